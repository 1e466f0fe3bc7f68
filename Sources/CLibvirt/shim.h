#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
