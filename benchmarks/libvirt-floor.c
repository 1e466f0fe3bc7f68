/* The "floor" for Drover's benchmarks: the least a program must do to read (or create) the same
 * inventory through libvirt's C API, one call after another.
 *   libvirt-floor URI observe NAMESPACE   list all domains + read each one's metadata element
 *   libvirt-floor URI observe-config      list all domains + read each one's persistent XML (what
 *                                         plan reads: the ownership record and the config it
 *                                         converges), + list the volumes of a storage pool
 *   libvirt-floor URI observe-xml         list all domains + read each one's persistent XML, and
 *                                         its live XML too when it runs (what drift reads)
 *   libvirt-floor URI create PREFIX N [POOL]
 *                                         define + start N small domains, serially; with POOL,
 *                                         each first gets a qcow2 overlay volume there (what
 *                                         apply does for every node) and is deleted with it
 * Built by drover-bench with: cc -O2 -o libvirt-floor libvirt-floor.c $(pkg-config --cflags --libs libvirt)
 */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(void *data, virErrorPtr error) { (void)data; (void)error; }

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s URI observe NS | URI observe-config [POOL] | URI observe-xml | URI create PREFIX N\n", argv[0]); return 64; }
  if (strcmp(argv[2], "observe") == 0 && argc < 4) { fprintf(stderr, "observe needs a namespace\n"); return 64; }
  virSetErrorFunc(NULL, quiet);
  virConnectPtr conn = virConnectOpen(argv[1]);
  if (!conn) { fprintf(stderr, "cannot connect to %s\n", argv[1]); return 1; }
  int status = 0;
  if (strcmp(argv[2], "observe") == 0) {
    virDomainPtr *domains = NULL;
    int n = virConnectListAllDomains(conn, &domains, 0);
    if (n < 0) { status = 1; goto out; }
    long owned = 0;
    for (int i = 0; i < n; i++) {
      char *md = virDomainGetMetadata(domains[i], VIR_DOMAIN_METADATA_ELEMENT, argv[3], 0);
      if (md) { owned++; free(md); }
      virDomainFree(domains[i]);
    }
    free(domains);
    printf("%d domains, %ld with metadata\n", n, owned);
  } else if (strcmp(argv[2], "observe-config") == 0) {
    virDomainPtr *domains = NULL;
    int n = virConnectListAllDomains(conn, &domains, 0);
    if (n < 0) { status = 1; goto out; }
    long bytes = 0;
    for (int i = 0; i < n; i++) {
      char *xml = virDomainGetXMLDesc(domains[i], VIR_DOMAIN_XML_INACTIVE);
      if (xml) { bytes += (long)strlen(xml); free(xml); }
      virDomainFree(domains[i]);
    }
    free(domains);
    int volumes = 0;
    if (argc >= 4) {
      virStoragePoolPtr pool = virStoragePoolLookupByName(conn, argv[3]);
      if (pool) {
        char **names = NULL;
        virStorageVolPtr *vols = NULL;
        volumes = virStoragePoolListAllVolumes(pool, &vols, 0);
        for (int i = 0; i < volumes; i++) virStorageVolFree(vols[i]);
        free(vols);
        (void)names;
        virStoragePoolFree(pool);
      }
    }
    printf("%d domains, %ld bytes of XML, %d volumes\n", n, bytes, volumes);
  } else if (strcmp(argv[2], "observe-xml") == 0) {
    /* One bulk call lists the domains with their states (no per-domain state round trip). */
    virDomainStatsRecordPtr *records = NULL;
    int n = virConnectGetAllDomainStats(conn, VIR_DOMAIN_STATS_STATE, &records, 0);
    if (n < 0) { status = 1; goto out; }
    long bytes = 0;
    for (int i = 0; i < n; i++) {
      int state = 0;
      virTypedParamsGetInt(records[i]->params, records[i]->nparams, "state.state", &state);
      char *xml = virDomainGetXMLDesc(records[i]->dom, VIR_DOMAIN_XML_INACTIVE);
      if (xml) { bytes += (long)strlen(xml); free(xml); }
      if (state != VIR_DOMAIN_SHUTOFF && state != VIR_DOMAIN_NOSTATE && state != VIR_DOMAIN_CRASHED) {
        xml = virDomainGetXMLDesc(records[i]->dom, 0);
        if (xml) { bytes += (long)strlen(xml); free(xml); }
      }
    }
    virDomainStatsRecordListFree(records);
    printf("%d domains, %ld bytes of XML\n", n, bytes);
  } else if (strcmp(argv[2], "create") == 0 && argc >= 5) {
    int n = atoi(argv[4]);
    virStoragePoolPtr pool = argc >= 6 ? virStoragePoolLookupByName(conn, argv[5]) : NULL;
    if (argc >= 6 && !pool) { fprintf(stderr, "no storage pool %s\n", argv[5]); status = 1; goto out; }
    char xml[2048];
    for (int i = 1; i <= n; i++) {
      char disk[512] = "";
      if (pool) {
        char vol[1024];
        snprintf(vol, sizeof vol,
                 "<volume><name>%s-%d.qcow2</name><capacity unit='bytes'>1073741824</capacity><allocation unit='bytes'>0</allocation>"
                 "<target><format type='qcow2'/></target><backingStore><path>/var/lib/drover/images/base.qcow2</path>"
                 "<format type='qcow2'/></backingStore></volume>", argv[3], i);
        virStorageVolPtr v = virStorageVolCreateXML(pool, vol, 0);
        if (!v) { status = 1; break; }
        virStorageVolFree(v);
        snprintf(disk, sizeof disk,
                 "<devices><disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
                 "<source pool='%s' volume='%s-%d.qcow2'/><target dev='vda' bus='virtio'/></disk></devices>", argv[5], argv[3], i);
      }
      snprintf(xml, sizeof xml,
               "<domain type='test'><name>%s-%d</name><memory unit='KiB'>262144</memory><vcpu>1</vcpu>"
               "<os><type>hvm</type></os>%s</domain>", argv[3], i, disk);
      virDomainPtr d = virDomainDefineXML(conn, xml);
      if (!d || virDomainCreate(d) < 0) { status = 1; if (d) virDomainFree(d); break; }
      virDomainFree(d);
    }
  }
out:
  virConnectClose(conn);
  return status;
}
