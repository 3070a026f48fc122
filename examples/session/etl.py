"""The session example's NVTabular workflow (shared/design/session-example.md, section 2).

Ported by changing one import: ``import funnel_workflow as nvt`` (was ``import nvtabular as
nvt``), and ``cudf.to_datetime`` → ``pd.to_datetime`` (cudf is the GPU DataFrame; the
example's own CPU variant uses pandas). Everything else is the example's code.
"""

import numpy as np
import pandas as pd

import funnel_workflow as nvt

__all__ = ["SESSIONS_MAX_LENGTH", "MINIMUM_SESSION_LENGTH", "SEQUENCE_FEATURES", "build_workflow"]

SESSIONS_MAX_LENGTH = 20
MINIMUM_SESSION_LENGTH = 2
SEQUENCE_FEATURES = [
    "item_id-list_seq", "category-list_seq", "product_recency_days_log_norm-list_seq", "et_dayofweek_sin-list_seq",
]


# Compute Item recency: Define a custom Op
class ItemRecency(nvt.ops.Operator):
    def transform(self, columns, gdf):
        for column in columns.names:
            col = gdf[column]
            item_first_timestamp = gdf['itemid_ts_first']
            delta_days = (col - item_first_timestamp) / (60*60*24)
            gdf[column + "_age_days"] = delta_days * (delta_days >=0)
        return gdf

    def output_column_names(self, columns):
        return nvt.ColumnSelector([column + "_age_days" for column in columns.names])

    def dependencies(self):
        return ["itemid_ts_first"]


def get_cycled_feature_value_sin(col, max_value):
    value_scaled = (col + 0.000001) / max_value
    value_sin = np.sin(2*np.pi*value_scaled)
    return value_sin


def build_workflow() -> nvt.Workflow:
    """The example's workflow graph, unfitted."""
    # Encodes categorical features as contiguous integers
    cat_feats = nvt.ColumnSelector(['session_id', 'category', 'item_id']) >> nvt.ops.Categorify(start_index=1)

    # create time features
    session_ts = nvt.ColumnSelector(['timestamp'])
    session_time = (
        session_ts >>
        nvt.ops.LambdaOp(lambda col: pd.to_datetime(col, unit='s')) >>
        nvt.ops.Rename(name = 'event_time_dt')
    )
    sessiontime_weekday = (
        session_time >>
        nvt.ops.LambdaOp(lambda col: col.dt.weekday) >>
        nvt.ops.Rename(name ='et_dayofweek')
    )
    weekday_sin = sessiontime_weekday >> (lambda col: get_cycled_feature_value_sin(col+1, 7)) >> nvt.ops.Rename(name = 'et_dayofweek_sin')

    recency_features = session_ts >> ItemRecency()
    # Apply standardization to this continuous feature
    recency_features_norm = recency_features >> nvt.ops.LogOp() >> nvt.ops.Normalize() >> nvt.ops.Rename(name='product_recency_days_log_norm')

    time_features = (
        session_time +
        sessiontime_weekday +
        weekday_sin +
        recency_features_norm
    )
    features = nvt.ColumnSelector(['timestamp', 'session_id']) + cat_feats + time_features

    # Define Groupby Operator
    groupby_features = features >> nvt.ops.Groupby(
        groupby_cols=["session_id"],
        sort_cols=["timestamp"],
        aggs={
            'item_id': ["list", "count"],
            'category': ["list"],
            'timestamp': ["first"],
            'event_time_dt': ["first"],
            'et_dayofweek_sin': ["list"],
            'product_recency_days_log_norm': ["list"]
            },
        name_sep="-")

    # Truncate sequence features to first interacted 20 items
    groupby_features_list = groupby_features['item_id-list', 'category-list', 'et_dayofweek_sin-list', 'product_recency_days_log_norm-list']
    groupby_features_truncated = groupby_features_list >> nvt.ops.ListSlice(0, SESSIONS_MAX_LENGTH) >> nvt.ops.Rename(postfix = '_seq')

    # Calculate session day index based on 'event_time_dt-first' column
    day_index = ((groupby_features['event_time_dt-first'])  >>
        nvt.ops.LambdaOp(lambda col: (col - col.min()).dt.days +1) >>
        nvt.ops.Rename(f = lambda col: "day_index")
    )

    # Select features for training
    selected_features = groupby_features['session_id', 'item_id-count'] + groupby_features_truncated + day_index

    # Filter out sessions with less than 2 interactions
    filtered_sessions = selected_features >> nvt.ops.Filter(f=lambda df: df["item_id-count"] >= MINIMUM_SESSION_LENGTH)
    return nvt.Workflow(filtered_sessions)
