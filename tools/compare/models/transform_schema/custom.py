"""Transform whose output may violate the typeSchema output requirements in model-metadata."""


def load_model(code_dir):
    return "ts"


def transform(data, model):
    if "text" in data.columns:
        return data
    return data.select_dtypes("number").fillna(0)
