package drum.java;

import com.datarobot.drum.BasePredictor;
import java.io.File;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * DataRobot Scoring Code (`.jar` artifacts). Every top-level `.jar` of the code dir goes on a class loader, and
 * the model is `com.datarobot.prediction.Predictors.getPredictor(loader)` from those jars, as the Scoring Code API
 * documents: an `IRegressionPredictor` (`double score(Map)`) or an `IClassificationPredictor`
 * (`Map<String, Double> score(Map)`). Reflection only: drum needs no Scoring Code jar of its own.
 */
public class ScoringCode extends BasePredictor {
    private Object model;
    private Method score;
    private boolean regression;
    private String[] labels;

    public ScoringCode(String name) {
        super(name);
    }

    @Override
    public void configure(Map<String, Object> params) throws Exception {
        String codeDir = (String) params.get("__custom_model_path__");
        List<URL> jars = new ArrayList<>();
        File[] files = new File(codeDir).listFiles();
        if (files != null) {
            Arrays.sort(files);
            for (File file : files) {
                if (file.isFile() && file.getName().toLowerCase().endsWith(".jar")) {
                    jars.add(file.getCanonicalFile().toURI().toURL());
                }
            }
        }
        ClassLoader loader = new URLClassLoader(jars.toArray(new URL[0]), getClass().getClassLoader());
        Class<?> predictors;
        try {
            predictors = Class.forName("com.datarobot.prediction.Predictors", true, loader);
        } catch (ClassNotFoundException e) {
            throw new Exception("No DataRobot Scoring Code found in " + codeDir
                    + ": the .jar must provide com.datarobot.prediction.Predictors (the Scoring Code API)");
        }
        model = predictors.getMethod("getPredictor", ClassLoader.class).invoke(null, loader);
        Class<?> regressionApi = Class.forName("com.datarobot.prediction.IRegressionPredictor", true, loader);
        regression = regressionApi.isInstance(model);
        score = findScore(model.getClass());
        String positive = (String) params.get("positiveClassLabel");
        String negative = (String) params.get("negativeClassLabel");
        if (positive != null && negative != null) {
            labels = new String[] {positive, negative};
        } else if (params.get("classLabels") instanceof String[]) {
            labels = (String[]) params.get("classLabels");
        } else if (!regression) {
            labels = (String[]) model.getClass().getMethod("getClassLabels").invoke(model);
        }
    }

    private static Method findScore(Class<?> cls) throws NoSuchMethodException {
        for (Method method : cls.getMethods()) {
            if (method.getName().equals("score") && method.getParameterCount() == 1
                    && method.getParameterTypes()[0].isAssignableFrom(Map.class)) {
                method.setAccessible(true);
                return method;
            }
        }
        throw new NoSuchMethodException(cls.getName() + ".score(Map)");
    }

    @Override
    @SuppressWarnings("unchecked")
    public String predict(byte[] inputBytes) throws Exception {
        List<double[]> rows = new ArrayList<>();
        String[] modelLabels = regression ? null : (String[]) model.getClass().getMethod("getClassLabels").invoke(model);
        for (Map<String, String> record : Csv.records(inputBytes)) {
            Object result = score.invoke(model, record);
            if (regression) {
                rows.add(new double[] {((Number) result).doubleValue()});
                continue;
            }
            Map<String, Double> probabilities = (Map<String, Double>) result;
            double[] row = new double[labels.length];
            for (int i = 0; i < labels.length; i++) {
                // Binary: the user's labels map onto the model's by position (positive first), as DRUM.
                String key = labels.length == 2 && modelLabels.length == 2 ? modelLabels[i] : labels[i];
                Double value = probabilities.get(key);
                row[i] = value == null ? Double.NaN : value;
            }
            rows.add(row);
        }
        return Csv.write(regression ? new String[] {"Predictions"} : labels, rows);
    }

    @Override
    public <T> T predictUnstructured(byte[] inputBytes, String mimetype, String charset, Map<String, String> query)
            throws Exception {
        throw new Exception("Not Implemented");
    }
}
