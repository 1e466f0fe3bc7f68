"""The floor in libvirt-python: list every domain, then read each one's Drover metadata element,
one call after another. Same reads as benchmarks/libvirt-floor.c observe.

    python libvirt_floor.py URI NAMESPACE
"""
import sys

import libvirt


def main() -> int:
    uri, namespace = sys.argv[1], sys.argv[2]
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(uri)
    owned = 0
    domains = conn.listAllDomains(0)
    for domain in domains:
        try:
            domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, namespace, 0)
            owned += 1
        except libvirt.libvirtError:
            pass
    print(f"{len(domains)} domains, {owned} with metadata")
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
