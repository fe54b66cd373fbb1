"""Train a tiny deterministic sklearn regressor into ./model.pkl (run by the harness; not committed)."""

import pickle

import pandas as pd
from sklearn.linear_model import Ridge

X = pd.DataFrame({"x1": [1, 2, 3, 4, 5, 6], "x2": [0, 1, 0, 1, 0, 1], "x3": [3, 1, 4, 1, 5, 9]})
y = [1.0, 2.5, 2.9, 4.2, 5.1, 6.3]
with open("model.pkl", "wb") as f:
    pickle.dump(Ridge(alpha=0.5).fit(X, y), f)
