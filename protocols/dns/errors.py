"""The DNS plugin's error family and Packetbeat's note texts (``packetbeat/protos/dns/errors.go``)."""

from __future__ import annotations


class DnsFormError(Exception):
    """A DNS message (or part of one) that does not follow the wire format."""


NON_DNS = "Message's data could not be decoded as DNS"
DUPLICATE_QUERY = (
    "Another query with the same DNS ID from this client was received so this query was closed "
    "without receiving a response"
)
NO_RESPONSE = "No response to this query was received"
ORPHANED_RESPONSE = "Response: received without an associated Query"
UDP_TOO_LARGE = "Non-EDNS packet has size greater than 512"
RESP_UDP_TOO_LARGE = "Response: Non-EDNS packet has size greater than 512"
RESP_EDNS_NO_SUPPORT = "Responder does not support EDNS"
RESP_EDNS_UNEXPECTED = "Unexpected EDNS answer"
ZERO_LENGTH = "Message's length was set to zero"
UNEXPECTED_LENGTH = "Unexpected message data length"
INCOMPLETE = "Message's data is incomplete"
# pybeat's own: a pending query pushed out by the max_pending_transactions cap.
EVICTED = "Query evicted before a response was received: too many pending transactions"


def response(note: str) -> str:
    """The text Packetbeat uses for an error on the response side of a TCP connection."""
    return "Response: " + note
