package drum.java;

import com.datarobot.drum.BasePredictor;
import hex.ModelCategory;
import hex.genmodel.GenModel;
import hex.genmodel.MojoModel;
import hex.genmodel.easy.EasyPredictModelWrapper;
import hex.genmodel.easy.RowData;
import java.io.File;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

/**
 * H2O models through h2o-genmodel: a MOJO (`.zip`) or a POJO (`.java`, compiled here with the JDK's compiler into
 * a temporary directory). Regression answers a `Predictions` column, classification the model's own class labels.
 */
public class H2OPredictor extends BasePredictor {
    private EasyPredictModelWrapper model;
    private ModelCategory category;
    private String[] header;

    public H2OPredictor(String name) {
        super(name);
    }

    @Override
    public void configure(Map<String, Object> params) throws Exception {
        File codeDir = new File((String) params.get("__custom_model_path__"));
        File[] files = codeDir.listFiles();
        List<File> artifacts = new ArrayList<>();
        if (files != null) {
            Arrays.sort(files);
            for (File file : files) {
                String lower = file.getName().toLowerCase();
                if (file.isFile() && (lower.endsWith(".zip") || file.getName().endsWith(".java"))) {
                    artifacts.add(file);
                }
            }
        }
        if (artifacts.isEmpty()) {
            throw new Exception("No model artifact found in the model directory. Found files: "
                    + String.join(",", codeDir.list()) + "\nSupported model extensions: java/zip/ZIP");
        }
        if (artifacts.size() > 1) {
            List<String> names = new ArrayList<>();
            for (File artifact : artifacts) {
                names.add(artifact.getName());
            }
            throw new Exception("More than 1 main model artifact found in model directory: " + String.join(",", names));
        }
        File artifact = artifacts.get(0);
        GenModel genModel = artifact.getName().endsWith(".java") ? compilePojo(artifact) : MojoModel.load(artifact.getAbsolutePath());
        model = new EasyPredictModelWrapper(new EasyPredictModelWrapper.Config().setModel(genModel)
                .setConvertUnknownCategoricalLevelsToNa(true).setConvertInvalidNumbersToNa(true));
        category = model.getModelCategory();
        if (category == ModelCategory.Regression) {
            header = new String[] {"Predictions"};
        } else if (category == ModelCategory.Binomial || category == ModelCategory.Multinomial) {
            header = model.getResponseDomainValues();
        } else {
            throw new Exception(category + " is currently not supported");
        }
    }

    private static GenModel compilePojo(File source) throws Exception {
        JavaCompiler compiler = ToolProvider.getSystemJavaCompiler();
        if (compiler == null) {
            throw new Exception("An H2O POJO (.java) is compiled when it loads, which needs a JDK (javac), not only a JRE");
        }
        File out = java.nio.file.Files.createTempDirectory("drum-pojo").toFile();
        out.deleteOnExit();
        String classPath = new File(GenModel.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getPath();
        int status = compiler.run(null, null, null, "-d", out.getPath(), "-cp", classPath, source.getPath());
        if (status != 0) {
            throw new Exception("Compiling the POJO " + source.getName() + " failed (javac exit code " + status
                    + "). Make sure the POJO exists and hasn't been renamed. If the POJO is > 1GB in size, consider using MOJO");
        }
        String className = source.getName().substring(0, source.getName().length() - ".java".length());
        URLClassLoader loader = new URLClassLoader(new URL[] {out.toURI().toURL()}, H2OPredictor.class.getClassLoader());
        return (GenModel) loader.loadClass(className).getDeclaredConstructor().newInstance();
    }

    @Override
    public String predict(byte[] inputBytes) throws Exception {
        List<double[]> rows = new ArrayList<>();
        try {
            for (Map<String, String> record : Csv.records(inputBytes)) {
                RowData row = new RowData();
                row.putAll(record);
                if (category == ModelCategory.Regression) {
                    rows.add(new double[] {model.predictRegression(row).value});
                } else if (category == ModelCategory.Binomial) {
                    rows.add(model.predictBinomial(row).classProbabilities);
                } else {
                    rows.add(model.predictMultinomial(row).classProbabilities);
                }
            }
        } catch (Exception e) {
            throw new Exception("During the course of making a prediction an exception was encountered: " + e, e);
        }
        return Csv.write(header, rows);
    }

    @Override
    public <T> T predictUnstructured(byte[] inputBytes, String mimetype, String charset, Map<String, String> query)
            throws Exception {
        throw new Exception("Not Implemented: H2O models take structured (CSV) input");
    }
}
