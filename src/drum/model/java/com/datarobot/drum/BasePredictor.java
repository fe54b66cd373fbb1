package com.datarobot.drum;

import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Map;

/**
 * The base class of Java predictors, with the API of DRUM's `drum-base-predictor`: custom predictor classes
 * (DRUM_JAVA_CUSTOM_PREDICTOR_CLASS) extend it and have a public constructor taking the predictor's name.
 * `predict` takes a CSV payload and returns CSV text: a `Predictions` column, or one probability column per
 * class label.
 */
public abstract class BasePredictor {
    protected String name;

    public BasePredictor(String name) {
        this.name = name;
    }

    public BasePredictor setName(String name) {
        this.name = name;
        return this;
    }

    /** Parameters from drum: `__custom_model_path__`, `target_type`, `positiveClassLabel`, `negativeClassLabel`, `classLabels`, ... */
    public abstract void configure(Map<String, Object> params) throws Exception;

    public abstract String predict(byte[] inputBytes) throws Exception;

    public abstract <T> T predictUnstructured(byte[] inputBytes, String mimetype, String charset, Map<String, String> query)
            throws Exception;

    /** `predict` on a CSV file (drum passes large payloads by path). */
    public String predictCSV(String inputFilename) throws Exception {
        return predict(Files.readAllBytes(Paths.get(inputFilename)));
    }
}
