"""Train a tiny deterministic sklearn classifier into ./model.pkl (classes 'no'/'yes')."""

import pickle

import pandas as pd
from sklearn.linear_model import LogisticRegression

X = pd.DataFrame({"x1": [1, 2, 3, 4, 5, 6], "x2": [0, 1, 0, 1, 0, 1], "x3": [3, 1, 4, 1, 5, 9]})
y = ["no", "no", "yes", "no", "yes", "yes"]
with open("model.pkl", "wb") as f:
    pickle.dump(LogisticRegression(C=1.0).fit(X, y), f)
