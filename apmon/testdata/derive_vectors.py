# Writes the byte vectors of xdr_test.go with the ApMon Python library
# itself: github.com/MonALISA-CIT/apmon_py at commit 40c8cb9 (apmon.py,
# Logger.py and ProcInfo.py in APMON_PY), under Python 3.11 (xdrlib).
#
#   APMON_PY=/path/to/apmon_py python3 derive_vectors.py
#
# The library's own datagram builder (__directSendParams) runs with a socket
# that keeps what it is given; the rate rule is bypassed, the version string
# is set to this package's, and Python ints are sent as XDR int32 (type 2),
# as ApMon 2.2 and the C and Java libraries send integers.
import hashlib, os, sys, warnings

warnings.simplefilter("ignore")
sys.path.insert(0, os.environ["APMON_PY"])
import apmon
from Logger import Logger


class KeepingSocket:
    def __init__(self):
        self.sent = []

    def sendto(self, buf, addr):
        self.sent.append(buf)


def sender(dest, instance, seq):
    a = object.__new__(apmon.ApMon)
    a._ApMon__freed = True
    a.logger = Logger(Logger.FATAL)
    a.maxMsgSize = 1440
    a.senderRef = {dest: {"INSTANCE_ID": instance, "SEQ_NR": seq}}
    a._ApMon__udpSocket = KeepingSocket()
    a._ApMon__shouldSend = lambda: True
    apmon.ApMon._ApMon__version = "2.2.2-monitor"
    apmon.ApMon._ApMon__valueTypes = {str: 0, int: 2, float: 5}
    return a


dest = ("127.0.0.1", 8884, "s3cret")
a = sender(dest, 0x12345678, 41)
a._ApMon__directSendParams(dest, "Socorro_Monitor", "node-1", 1767225600,
                           [("jobs_queued", 42), ("oldest_queued_job_age_seconds", 12.5), ("host", "db")])
print("vector", a._ApMon__udpSocket.sent[0].hex())

dest = ("127.0.0.1", 8884, "")
a = sender(dest, 7, 1999999998)
params = [("param_%03d" % i, i * 0.5 if i % 2 else i) for i in range(120)]
a._ApMon__directSendParams(dest, "Socorro_Monitor_Processors", "a-rather-long-node-name.example.org", 1767225601, params)
for b in a._ApMon__udpSocket.sent:
    print("split", len(b), hashlib.sha256(b).hexdigest())
