"""Event-to-tensor representations (SPEC 3), their registry, and conversion to HDF5 tensor files.

Built-in representations: ``histo``, ``diff``, ``event_cube``, ``timesurface``,
``multi_channel_timesurface``, ``stacked_histogram``, ``rvt_stacked_histogram`` (RVT's exact input tensor).
``events_to_tensor`` is the convenient entry; ``TensorBuilder`` builds the same tensor from pieces of a
window's events (bounded memory for huge windows);
``register_representation`` adds user ones. ``generate_hdf5`` lives in ``evdet.preprocessing.convert``.
"""

from evdet.preprocessing.builder import TensorBuilder
from evdet.preprocessing.event_cube import event_cube, event_cube_accumulate, event_cube_finalize
from evdet.preprocessing.histo import (
    diff,
    diff_accumulate,
    diff_finalize,
    histo,
    histo_accumulate,
    histo_finalize,
)
from evdet.preprocessing.registry import (
    REPRESENTATIONS,
    Representation,
    events_to_tensor,
    get_representation,
    register_representation,
)
from evdet.preprocessing.rvt_histogram import rvt_stacked_histogram
from evdet.preprocessing.stacked_histogram import (
    stacked_histogram,
    stacked_histogram_accumulate,
    stacked_histogram_finalize,
)
from evdet.preprocessing.timesurface import (
    multi_channel_timesurface,
    timesurface,
    timesurface_accumulate,
    timesurface_finalize,
)

_HISTO_STEPS = {"accumulate": histo_accumulate, "finalize": histo_finalize}
_TIMESURFACE_STEPS = {"accumulate": timesurface_accumulate, "finalize": timesurface_finalize}

register_representation("histo", histo, 2, {"max_incr_per_pixel": 5.0}, (0.0, 1.0), takes_start_ts=True,
                        **_HISTO_STEPS)
register_representation("diff", diff, 1, {"max_incr_per_pixel": 5.0}, (-1.0, 1.0), takes_start_ts=True,
                        channel_layout="signed", accumulate=diff_accumulate, finalize=diff_finalize)
register_representation(
    "event_cube", event_cube,
    lambda num_utbins, split_polarity, **_: int(num_utbins) * (2 if split_polarity else 1),
    {"num_utbins": 3, "split_polarity": True, "max_incr_per_pixel": 5.0},
    lambda split_polarity, **_: (0.0, 1.0) if split_polarity else (-1.0, 1.0), takes_start_ts=True,
    channel_layout=lambda split_polarity, **_: "off_on" if split_polarity else "signed",
    accumulate=event_cube_accumulate, finalize=event_cube_finalize)
register_representation("timesurface", timesurface, 2, {}, (0.0, 1.0), takes_start_ts=True,
                        **_TIMESURFACE_STEPS)
register_representation("multi_channel_timesurface", multi_channel_timesurface,
                        lambda num_utbins, **_: 2 * int(num_utbins), {"num_utbins": 3}, (0.0, 1.0),
                        takes_start_ts=True, **_TIMESURFACE_STEPS)
register_representation("stacked_histogram", stacked_histogram, lambda num_utbins, **_: 2 * int(num_utbins),
                        {"num_utbins": 10, "max_count": 10}, lambda max_count, **_: (0.0, float(max_count)),
                        uint8_scale=1.0, takes_start_ts=True, accumulate=stacked_histogram_accumulate,
                        finalize=stacked_histogram_finalize)
register_representation("rvt_stacked_histogram", rvt_stacked_histogram,
                        lambda num_utbins, **_: 2 * int(num_utbins), {"num_utbins": 10, "max_count": 10},
                        lambda max_count, **_: (0.0, float(max_count)), uint8_scale=1.0, takes_start_ts=True)

__all__ = [
    "REPRESENTATIONS", "Representation", "TensorBuilder", "diff", "event_cube", "events_to_tensor",
    "get_representation",
    "histo", "multi_channel_timesurface", "register_representation", "rvt_stacked_histogram",
    "stacked_histogram", "timesurface",
]
