"""Port of DRUM's unstructured word-count fixture: text or binary result chosen by query `ret_mode`."""


def load_model(code_dir):
    return "dummy"


def score_unstructured(model, data, query, **kwargs):
    text_data = data.decode("utf8") if isinstance(data, bytes) else data
    text_data = text_data.strip().replace("  ", " ")
    words_count = len(text_data.split(" ")) if text_data else 0
    if query.get("ret_mode") == "binary":
        return words_count.to_bytes(4, byteorder="big")
    return str(words_count)
