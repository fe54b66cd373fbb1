"""Fit a StandardScaler into ./transformer.pkl (transform target type without a transform hook)."""

import pickle

import pandas as pd
from sklearn.preprocessing import StandardScaler

X = pd.DataFrame({"x1": [1.0, 4.0, 0.5, 10.0], "x2": [2.0, 5.0, 1.5, 0.0], "x3": [3.0, 6.0, -2.0, 1.0]})
with open("transformer.pkl", "wb") as f:
    pickle.dump(StandardScaler().fit(X), f)
