"""Prometheus remote-write 1.0 messages (``prometheus.WriteRequest``), built at import.

The messages are declared through protobuf's descriptor API from the
definitions in prometheus/prompb/remote.proto and types.proto (fields and
numbers as there; the metadata, exemplar and histogram fields this exporter
never sends are left out, which keeps every message it sends valid), so
no generated ``_pb2`` file has to be kept in step with the protobuf runtime.
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["WriteRequest", "TimeSeries", "Label", "Sample"]

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="wedmetrics/prompb/remote.proto",
                                           package="prometheus", syntax="proto3")

    def message(name, *fields):
        m = f.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            fd = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                fd.type_name = type_name
        return m

    one, many = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message("Sample", ("value", 1, _F.TYPE_DOUBLE, one, None),
            ("timestamp", 2, _F.TYPE_INT64, one, None))
    message("Label", ("name", 1, _F.TYPE_STRING, one, None),
            ("value", 2, _F.TYPE_STRING, one, None))
    message("TimeSeries", ("labels", 1, _F.TYPE_MESSAGE, many, ".prometheus.Label"),
            ("samples", 2, _F.TYPE_MESSAGE, many, ".prometheus.Sample"))
    write = message("WriteRequest",
                    ("timeseries", 1, _F.TYPE_MESSAGE, many, ".prometheus.TimeSeries"))
    write.reserved_range.add(start=2, end=3)   # field 2 is reserved in remote.proto
    return f


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
WriteRequest = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.WriteRequest"))
TimeSeries = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.TimeSeries"))
Label = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.Label"))
Sample = message_factory.GetMessageClass(_pool.FindMessageTypeByName("prometheus.Sample"))
