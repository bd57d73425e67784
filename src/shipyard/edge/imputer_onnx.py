"""scikit-learn's `SimpleImputer` on numbers as ONNX `IsNaN` + `Where`, in double or float.

skl2onnx writes a numeric `SimpleImputer` as the `ai.onnx.ml` `Imputer` operator, which ONNX
Runtime runs in float only ("Could not find an implementation for Imputer(1)" in double, measured
with ONNX Runtime 1.32): a double export of any pipeline with an imputer would not run. This
converter replaces it for numeric inputs; string inputs keep skl2onnx's own converter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["register_converters"]


def register_converters() -> None:
    """Make skl2onnx write numeric `SimpleImputer`s with this module's converter.

    skl2onnx keeps its converters in one process-wide table; calling this again changes nothing.
    """
    from skl2onnx import update_registered_converter
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.impute import SimpleImputer

    def convert(scope: Any, operator: Any, container: Any) -> None:
        from skl2onnx.common.data_types import StringTensorType

        if isinstance(operator.inputs[0].type, StringTensorType):
            convert_sklearn_imputer(scope, operator, container)
        else:
            _convert_numeric(scope, operator, container)

    update_registered_converter(
        SimpleImputer,
        "SklearnSimpleImputer",
        calculate_sklearn_imputer_output_shapes,
        convert,
        overwrite=True,
    )


def _convert_numeric(scope: Any, operator: Any, container: Any) -> None:
    """Each missing value (NaN, or the imputer's `missing_values` number) becomes its column's
    statistic; columns the imputer drops (all missing in training) are left out."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.common import concatenate_variables

    imputer = operator.raw_operator
    if getattr(imputer, "add_indicator", False):
        raise NotImplementedError("SimpleImputer(add_indicator=True) has no ONNX converter here")
    double = isinstance(operator.inputs[0].type, DoubleTensorType)
    proto = TensorProto.DOUBLE if double else TensorProto.FLOAT
    statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    if not getattr(imputer, "keep_empty_features", False):
        kept = np.flatnonzero(~np.isnan(statistics))
    else:
        kept = np.arange(len(statistics))
        statistics = np.nan_to_num(statistics, nan=0.0)
    x = concatenate_variables(scope, operator.inputs, container)
    if len(kept) < len(statistics):
        columns = scope.get_unique_variable_name("kept_columns")
        container.add_initializer(columns, TensorProto.INT64, [len(kept)], kept.tolist())
        gathered = scope.get_unique_variable_name("kept")
        container.add_node("Gather", [x, columns], [gathered], axis=1)
        x = gathered
    fill = scope.get_unique_variable_name("fill")
    container.add_initializer(fill, proto, [1, len(kept)], statistics[kept].tolist())
    missing = scope.get_unique_variable_name("missing")
    marker = imputer.missing_values
    if (isinstance(marker, float) and math.isnan(marker)) or marker is None:
        container.add_node("IsNaN", [x], [missing])
    else:
        value = scope.get_unique_variable_name("missing_value")
        container.add_initializer(value, proto, [], [float(marker)])
        container.add_node("Equal", [x, value], [missing])
    container.add_node("Where", [missing, fill, x], [operator.outputs[0].full_name])
