"""A standard mDNS implementation (Debian's python3-zeroconf) on the other side of the mDNS tests.

Runs only inside the tests' private network namespace (test/helpers/netns.ts), on 127.0.0.1.

  zeroconf-peer.py register <instance> <port> <properties-json>
      registers <instance>._sark._tcp.local. (host <instance>-zc.local., 127.0.0.1), prints
      "registered", and unregisters (goodbye) when its standard input closes.
  zeroconf-peer.py browse <instance> <timeout-seconds>
      browses _sark._tcp.local. and prints one JSON line per service it resolves, until
      <instance> is among them or the timeout passes.
"""

import json
import signal
import socket
import sys
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

SERVICE_TYPE = "_sark._tcp.local."


def text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def register(zc, instance, port, properties):
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{instance}.{SERVICE_TYPE}",
        port=port,
        properties=properties,
        server=f"{instance}-zc.local.",
        addresses=[socket.inet_aton("127.0.0.1")],
    )
    zc.register_service(info)
    print("registered", flush=True)
    sys.stdin.read()
    zc.unregister_service(info)


def browse(zc, wanted, timeout):
    names = []

    def on_change(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added:
            names.append(name)

    browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
    deadline = time.monotonic() + timeout
    resolved = set()
    try:
        while time.monotonic() < deadline and f"{wanted}.{SERVICE_TYPE}" not in resolved:
            for name in list(names):
                if name in resolved:
                    continue
                info = zc.get_service_info(SERVICE_TYPE, name, timeout=1500)
                if info is None:
                    continue
                resolved.add(name)
                print(
                    json.dumps(
                        {
                            "name": name,
                            "server": info.server,
                            "port": info.port,
                            "addresses": info.parsed_addresses(),
                            "properties": {
                                text(key): text(value) for key, value in info.properties.items()
                            },
                        }
                    ),
                    flush=True,
                )
            time.sleep(0.05)
    finally:
        browser.cancel()


def main():
    # Never outlive the test, whatever happens to the process that started this one.
    signal.alarm(30)
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        if sys.argv[1] == "register":
            register(zc, sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
        elif sys.argv[1] == "browse":
            browse(zc, sys.argv[2], float(sys.argv[3]))
        else:
            raise SystemExit(f"unknown mode {sys.argv[1]}")
    finally:
        zc.close()


if __name__ == "__main__":
    main()
