"""The store's logic, once for every backend: each module runs a resource's contract
methods over a small protocol of SQL primitives that ``store/<backend>/`` implements (the
backend's module of the same name). No SQL here."""
