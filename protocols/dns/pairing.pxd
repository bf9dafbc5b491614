# The compiled form of pairing.py (the Python file is the code; this declares its types), so
# that the compiled DNS lane (_fast.pyx) calls the table's methods at C speed.

cdef class Txn:
    cdef public object ts, src_ip, src_port, dst_ip, dst_port, transport, request, responses
    cdef public object resp_ts, notes, req_id, resp_id
    cdef public bint mdns_only

    cpdef note(self, str text)


cdef class TxnTable:
    cdef public object pending, timeout_ns, release
    cdef public Py_ssize_t max_pending

    cpdef add(self, object key, Txn txn)
    cpdef Txn take(self, object key, object ts, object alt_key=*)
    cpdef Txn pop(self, object key)
    cpdef expire(self, object now_ns)
    cpdef drain(self)
