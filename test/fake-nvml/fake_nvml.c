/*
 * A fake libnvidia-ml.so.1 for tests: the NVML entry points the exporter uses, with the
 * real signatures and struct layouts, answering from a key=value config file named by
 * the FAKE_NVML_CONFIG environment variable (read at nvmlInit).
 *
 * Config (one `key=value` a line, `#` comments): a key `gpu.<i>.<key>` overrides `<key>`
 * for GPU i. Keys: gpus, driver_version, uuid, name, pci_bus_id, mig_mode, util_gpu,
 * util_mem, memory_total, memory_used, power_mw, power_limit_mw, energy_mj,
 * energy_step_mj, temp_gpu, temp_mem, clock_sm_mhz, clock_mem_mhz, throttle_reasons,
 * pcie_tx_kbps, pcie_rx_kbps, nvlink_tx_kib, nvlink_rx_kib, nvlink_step_kib,
 * ecc_corrected, ecc_uncorrected, violation_power_ns, violation_thermal_ns,
 * samples (square|constant), sample_period_us, square_half_us, sample_capacity,
 * mig_instances (gi:ci:total:used,... with mig_mode=1),
 * lost_after / lost_for (calls), xids (comma list delivered as events), procs (pid:bytes,...),
 * error.<function>=<nvmlReturn_t>, error.field.<fieldId>=<nvmlReturn_t>.
 * Build with -DOMIT_<function> to leave a symbol out of the library.
 * Test controls: fake_nvml_set_time_us, fake_nvml_set_lost, fake_nvml_inject_xid.
 *
 * Compiled against NVIDIA's own nvml.h (-I its directory): every entry point must match the
 * header's prototype and every struct is the header's, so the fake cannot drift from the ABI.
 * NVML_NO_UNVERSIONED_FUNC_DEFS keeps the old unversioned names as real symbols beside the
 * versioned ones, as the driver's library exports both.
 */
#define NVML_NO_UNVERSIONED_FUNC_DEFS
#include <nvml.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OK NVML_SUCCESS
#define E_UNINIT NVML_ERROR_UNINITIALIZED
#define E_ARG NVML_ERROR_INVALID_ARGUMENT
#define E_NOT_SUPPORTED NVML_ERROR_NOT_SUPPORTED
#define E_NOT_FOUND NVML_ERROR_NOT_FOUND
#define E_SIZE NVML_ERROR_INSUFFICIENT_SIZE
#define E_TIMEOUT NVML_ERROR_TIMEOUT
#define E_LOST NVML_ERROR_GPU_IS_LOST

#define MAXKV 512
#define MAXGPU 16
static char *cfg_key[MAXKV], *cfg_val[MAXKV];
static int cfg_n, inited;

/* A device handle (nvmlDevice_t) points at one of these; the header leaves the struct to the library. */
struct nvmlDevice_st { int index; long calls; int forced_lost; unsigned long long registered; };
typedef struct nvmlDevice_st dev_t_;
static dev_t_ devs[MAXGPU];
static unsigned long long fake_time_us;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
#define QCAP 256
static struct { int gpu; unsigned long long xid; } q[QCAP];
static int qhead, qlen;

static void load_config(void) {
  for (int i = 0; i < cfg_n; i++) { free(cfg_key[i]); free(cfg_val[i]); }
  cfg_n = 0;
  const char *path = getenv("FAKE_NVML_CONFIG");
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f) return;
  char line[1024];
  while (fgets(line, sizeof line, f) && cfg_n < MAXKV) {
    char *nl = strpbrk(line, "\r\n");
    if (nl) *nl = 0;
    char *eq = strchr(line, '=');
    if (line[0] == '#' || !eq) continue;
    *eq = 0;
    cfg_key[cfg_n] = strdup(line);
    cfg_val[cfg_n] = strdup(eq + 1);
    cfg_n++;
  }
  fclose(f);
}

static const char *get(const char *key) {
  for (int i = cfg_n - 1; i >= 0; i--) if (!strcmp(cfg_key[i], key)) return cfg_val[i];
  return NULL;
}
static const char *gcfg(int gpu, const char *key) {
  char k[256];
  snprintf(k, sizeof k, "gpu.%d.%s", gpu, key);
  const char *v = get(k);
  return v ? v : get(key);
}
static unsigned long long gnum(int gpu, const char *key, unsigned long long def) {
  const char *v = gcfg(gpu, key);
  return v ? strtoull(v, NULL, 0) : def;
}
static int ngpus(void) { int n = (int)gnum(-1, "gpus", 1); return n > MAXGPU ? MAXGPU : n; }

static unsigned long long now_us(void) {
  if (fake_time_us) return fake_time_us;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

static int valid(const void *d) { return d >= (const void *)devs && d < (const void *)(devs + ngpus()); }

/* Common entry of every device call: counts calls, applies loss and configured errors. */
static nvmlReturn_t enter(const void *d, const char *fn) {
  if (!inited) return E_UNINIT;
  if (!valid(d)) return E_ARG;
  dev_t_ *dv = (dev_t_ *)d;
  dv->calls++;
  unsigned long long after = gnum(dv->index, "lost_after", 0), span = gnum(dv->index, "lost_for", 0);
  if (dv->forced_lost) return E_LOST;
  if (after && (unsigned long long)dv->calls > after && (!span || (unsigned long long)dv->calls <= after + span)) return E_LOST;
  char k[128];
  snprintf(k, sizeof k, "error.%s", fn);
  const char *e = gcfg(dv->index, k);
  return e ? atoi(e) : OK;
}
static nvmlReturn_t global_err(const char *fn) {
  char k[128];
  snprintf(k, sizeof k, "error.%s", fn);
  const char *e = get(k);
  return e ? atoi(e) : OK;
}
#define ENTER(d) do { nvmlReturn_t r_ = enter((d), __func__); if (r_) return r_; } while (0)
#define IDX(d) (((dev_t_ *)(d))->index)
#define CALLS(d) (((dev_t_ *)(d))->calls)

static nvmlReturn_t put_str(char *out, unsigned int len, const char *s) {
  if (!out || strlen(s) + 1 > len) return E_SIZE;
  strcpy(out, s);
  return OK;
}

/* ---- MIG: mig_instances=gi:ci:total:used,... on a GPU with mig_mode=1 ---- */
#define MAXMIG 8
typedef struct { int parent, slot; } mig_t;
static mig_t migs[MAXGPU * MAXMIG];
static int is_mig(const void *d) { return d >= (const void *)migs && d < (const void *)(migs + MAXGPU * MAXMIG); }
/* Field k (0 gi, 1 ci, 2 total, 3 used) of MIG slot `slot` of GPU i; 0 when absent. */
static int mig_field(int i, int slot, int k, unsigned long long *v) {
  const char *p = gcfg(i, "mig_instances");
  for (int s = 0; p && *p; s++) {
    unsigned long long f[4] = {0, 0, 0, 0};
    char *end = (char *)p;
    for (int j = 0; j < 4; j++) { f[j] = strtoull(p, &end, 10); p = *end == ':' ? end + 1 : end; }
    if (s == slot) { *v = f[k]; return 1; }
    p = *end == ',' ? end + 1 : end;
  }
  return 0;
}
static nvmlReturn_t mig_enter(const void *d) {
  const mig_t *m = d;
  return enter(&devs[m->parent], "mig");
}

/* ---- test controls ---- */
void fake_nvml_set_time_us(unsigned long long t) { fake_time_us = t; }
void fake_nvml_set_lost(unsigned int gpu, int lost) { if (gpu < MAXGPU) devs[gpu].forced_lost = lost; }
void fake_nvml_inject_xid(unsigned int gpu, unsigned long long xid) {
  pthread_mutex_lock(&mu);
  if (qlen < QCAP) { q[(qhead + qlen) % QCAP].gpu = (int)gpu; q[(qhead + qlen) % QCAP].xid = xid; qlen++; }
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

/* ---- init ---- */
static nvmlReturn_t do_init(const char *fn) {
  load_config();
  nvmlReturn_t e = global_err(fn);
  if (e) return e;
  for (int i = 0; i < MAXGPU; i++) { devs[i].index = i; devs[i].calls = 0; devs[i].registered = 0; }
  pthread_mutex_lock(&mu);
  qhead = qlen = 0;
  pthread_mutex_unlock(&mu);
  inited = 1;
  return OK;
}
#ifndef OMIT_nvmlInit_v2
nvmlReturn_t nvmlInit_v2(void) { return do_init("nvmlInit_v2"); }
#endif
nvmlReturn_t nvmlInit(void) { return do_init("nvmlInit"); }
nvmlReturn_t nvmlShutdown(void) { inited = 0; return OK; }
const char *nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
    case OK: return "Success";
    case E_UNINIT: return "Uninitialized";
    case E_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_IN_USE: return "In use by another client";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    case E_NOT_FOUND: return "Not Found";
    case E_TIMEOUT: return "Timeout";
    case E_LOST: return "GPU is lost";
    default: return "Unknown Error";
  }
}

static nvmlReturn_t count(unsigned int *n, const char *fn) {
  if (!inited) return E_UNINIT;
  nvmlReturn_t e = global_err(fn);
  if (e) return e;
  *n = (unsigned int)ngpus();
  return OK;
}
#ifndef OMIT_nvmlDeviceGetCount_v2
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n) { return count(n, "nvmlDeviceGetCount_v2"); }
#endif
nvmlReturn_t nvmlDeviceGetCount(unsigned int *n) { return count(n, "nvmlDeviceGetCount"); }

static nvmlReturn_t by_index(unsigned int i, nvmlDevice_t *out) {
  if (!inited) return E_UNINIT;
  if (i >= (unsigned int)ngpus()) return E_ARG;
  nvmlReturn_t e = enter(&devs[i], "nvmlDeviceGetHandleByIndex");
  if (e) return e;
  *out = &devs[i];
  return OK;
}
#ifndef OMIT_nvmlDeviceGetHandleByIndex_v2
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *out) { return by_index(i, out); }
#endif
nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int i, nvmlDevice_t *out) { return by_index(i, out); }

nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int len) {
  if (!inited) return E_UNINIT;
  const char *s = get("driver_version");
  return put_str(v, len, s ? s : "590.48.01");
}

/* ---- identity ---- */
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *out, unsigned int len) {
  if (is_mig(d)) {
    nvmlReturn_t e = mig_enter(d);
    if (e) return e;
    char u[64];
    snprintf(u, sizeof u, "MIG-fake%04d-0000-0000-0000-%012d", ((const mig_t *)(const void *)d)->parent, ((const mig_t *)(const void *)d)->slot);
    return put_str(out, len, u);
  }
  ENTER(d);
  char def[64];
  snprintf(def, sizeof def, "GPU-fake0000-0000-0000-0000-%012d", IDX(d));
  const char *s = gcfg(IDX(d), "uuid");
  return put_str(out, len, s ? s : def);
}
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *out, unsigned int len) {
  if (is_mig(d)) { nvmlReturn_t e = mig_enter(d); return e ? e : put_str(out, len, "NVIDIA H100 80GB HBM3 MIG 1g.10gb"); }
  ENTER(d);
  const char *s = gcfg(IDX(d), "name");
  return put_str(out, len, s ? s : "NVIDIA H100 80GB HBM3");
}
static void bus_id(int i, char *out, size_t n) {
  const char *s = gcfg(i, "pci_bus_id");
  if (s) snprintf(out, n, "%s", s); else snprintf(out, n, "00000000:%02X:00.0", 0x18 + i);
}
typedef nvmlPciInfo_t pci_t;
static nvmlReturn_t pci(nvmlDevice_t d, pci_t *p) {
  memset(p, 0, sizeof *p);
  bus_id(IDX(d), p->busId, sizeof p->busId);
  snprintf(p->busIdLegacy, sizeof p->busIdLegacy, "%.15s", p->busId + 4);
  p->bus = 0x18 + (unsigned int)IDX(d);
  p->pciDeviceId = 0x233010de;
  return OK;
}
#ifndef OMIT_nvmlDeviceGetPciInfo_v3
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, pci_t *p) { ENTER(d); return pci(d, p); }
#endif
nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t d, pci_t *p) { ENTER(d); return pci(d, p); }
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *cur, unsigned int *pending) {
  ENTER(d);
  *cur = *pending = (unsigned int)gnum(IDX(d), "mig_mode", 0);
  return OK;
}

/* ---- samples: a square wave, or a constant, at a fixed sample period ---- */
static unsigned int sample_value(int i, int type, unsigned long long ts) {
  const char *mode = gcfg(i, "samples");
  unsigned long long period = gnum(i, "sample_period_us", 100000);
  if (mode && !strcmp(mode, "square")) {
    unsigned long long half = gnum(i, "square_half_us", 1000000);
    unsigned int v = ((ts - period) / half) % 2 == 0 ? 100 : 0;
    return type == 2 ? v / 2 : v;
  }
  return (unsigned int)gnum(i, type == 2 ? "util_mem" : "util_gpu", 0);
}
#ifndef OMIT_nvmlDeviceGetSamples
nvmlReturn_t nvmlDeviceGetSamples(nvmlDevice_t d, nvmlSamplingType_t type, unsigned long long lastSeen, nvmlValueType_t *valType, unsigned int *count, nvmlSample_t *out) {
  ENTER(d);
  if (type != 1 && type != 2) return E_NOT_SUPPORTED;
  int i = IDX(d);
  unsigned long long period = gnum(i, "sample_period_us", 100000), cap = gnum(i, "sample_capacity", 120);
  long long newest = (long long)(now_us() / period), oldest = newest - (long long)cap + 1;
  if (lastSeen) { long long next = (long long)(lastSeen / period) + 1; if (next > oldest) oldest = next; }
  long long n = newest - oldest + 1;
  if (n <= 0) return E_NOT_FOUND;
  if (!out) { *count = (unsigned int)cap; return OK; }
  if ((long long)*count < n) return E_SIZE;
  for (long long k = 0; k < n; k++) {
    unsigned long long ts = (unsigned long long)(oldest + k) * period;
    out[k].timeStamp = ts;
    out[k].sampleValue.ullVal = 0;
    out[k].sampleValue.uiVal = sample_value(i, (int)type, ts);
  }
  *valType = NVML_VALUE_TYPE_UNSIGNED_INT;
  *count = (unsigned int)n;
  return OK;
}
#endif

/* ---- point readings ---- */
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
  ENTER(d);
  int i = IDX(d);
  const char *mode = gcfg(i, "samples");
  if (mode && !strcmp(mode, "square")) {
    /* Like the driver: the utilization of the most recent sample period. */
    unsigned long long period = gnum(i, "sample_period_us", 100000), ts = now_us() / period * period;
    u->gpu = sample_value(i, 1, ts);
    u->memory = sample_value(i, 2, ts);
  } else {
    u->gpu = (unsigned int)gnum(i, "util_gpu", 0);
    u->memory = (unsigned int)gnum(i, "util_mem", 0);
  }
  return OK;
}
#ifndef OMIT_nvmlDeviceGetMemoryInfo_v2
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
  if (is_mig(d)) {
    nvmlReturn_t e = mig_enter(d);
    if (e) return e;
    const mig_t *g = (const void *)d;
    mig_field(g->parent, g->slot, 2, &m->total);
    mig_field(g->parent, g->slot, 3, &m->used);
    m->reserved = 0;
    m->free = m->total - m->used;
    return OK;
  }
  ENTER(d);
  if (m->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  int i = IDX(d);
  m->total = gnum(i, "memory_total", 85520809984ULL);
  m->used = gnum(i, "memory_used", 0);
  m->reserved = gnum(i, "memory_reserved", 0);
  m->free = m->total - m->used - m->reserved;
  return OK;
}
#endif
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
  ENTER(d);
  int i = IDX(d);
  m->total = gnum(i, "memory_total", 85520809984ULL);
  m->used = gnum(i, "memory_used", 0);
  m->free = m->total - m->used;
  return OK;
}
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) { ENTER(d); *mw = (unsigned int)gnum(IDX(d), "power_mw", 70000); return OK; }
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *mw) { ENTER(d); *mw = (unsigned int)gnum(IDX(d), "power_limit_mw", 700000); return OK; }
#ifndef OMIT_nvmlDeviceGetTotalEnergyConsumption
nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *mj) {
  ENTER(d);
  *mj = gnum(IDX(d), "energy_mj", 1000000) + (unsigned long long)CALLS(d) * gnum(IDX(d), "energy_step_mj", 0);
  return OK;
}
#endif
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, nvmlTemperatureSensors_t sensor, unsigned int *t) {
  ENTER(d);
  if (sensor != NVML_TEMPERATURE_GPU) return E_NOT_SUPPORTED;
  *t = (unsigned int)gnum(IDX(d), "temp_gpu", 40);
  return OK;
}
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, nvmlClockType_t type, unsigned int *mhz) {
  ENTER(d);
  if (type == NVML_CLOCK_SM || type == NVML_CLOCK_GRAPHICS) *mhz = (unsigned int)gnum(IDX(d), "clock_sm_mhz", 1980);
  else if (type == NVML_CLOCK_MEM) *mhz = (unsigned int)gnum(IDX(d), "clock_mem_mhz", 2619);
  else return E_NOT_SUPPORTED;
  return OK;
}
#ifndef OMIT_nvmlDeviceGetCurrentClocksEventReasons
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *r) { ENTER(d); *r = gnum(IDX(d), "throttle_reasons", 0); return OK; }
#endif
nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t d, unsigned long long *r) { ENTER(d); *r = gnum(IDX(d), "throttle_reasons", 0); return OK; }
nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t d, nvmlPcieUtilCounter_t counter, unsigned int *kbps) {
  ENTER(d);
  *kbps = (unsigned int)gnum(IDX(d), counter == NVML_PCIE_UTIL_TX_BYTES ? "pcie_tx_kbps" : "pcie_rx_kbps", 0);
  return OK;
}
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, nvmlMemoryErrorType_t errType, nvmlEccCounterType_t counterType, unsigned long long *n) {
  ENTER(d);
  if (counterType != NVML_VOLATILE_ECC) return E_NOT_SUPPORTED;
  *n = gnum(IDX(d), errType == NVML_MEMORY_ERROR_TYPE_CORRECTED ? "ecc_corrected" : "ecc_uncorrected", 0);
  return OK;
}
#ifndef OMIT_nvmlDeviceGetViolationStatus
nvmlReturn_t nvmlDeviceGetViolationStatus(nvmlDevice_t d, nvmlPerfPolicyType_t policy, nvmlViolationTime_t *v) {
  ENTER(d);
  if (policy != NVML_PERF_POLICY_POWER && policy != NVML_PERF_POLICY_THERMAL) return E_NOT_SUPPORTED;
  v->referenceTime = now_us();
  v->violationTime = gnum(IDX(d), policy == NVML_PERF_POLICY_POWER ? "violation_power_ns" : "violation_thermal_ns", 0);
  return OK;
}
#endif

/* Health fields (recovery action, NVLink link count and error counters): in the health section below. */
static int health_field(nvmlDevice_t d, nvmlFieldValue_t *f);
#ifndef OMIT_nvmlDeviceGetFieldValues
nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t d, int n, nvmlFieldValue_t *f) {
  ENTER(d);
  int i = IDX(d);
  for (int k = 0; k < n; k++) {
    char key[64];
    snprintf(key, sizeof key, "error.field.%u", f[k].fieldId);
    const char *e = gcfg(i, key);
    f[k].timestamp = (long long)now_us();
    f[k].latencyUsec = 0;
    f[k].value.ullVal = 0;
    if (e) { f[k].nvmlReturn = atoi(e); continue; }
    f[k].nvmlReturn = OK;
    unsigned long long step = (unsigned long long)CALLS(d) * gnum(i, "nvlink_step_kib", 0);
    switch (f[k].fieldId) {
      case NVML_FI_DEV_MEMORY_TEMP: f[k].valueType = NVML_VALUE_TYPE_UNSIGNED_INT; f[k].value.uiVal = (unsigned int)gnum(i, "temp_mem", 45); break;
      case NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX: f[k].valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG; f[k].value.ullVal = gnum(i, "nvlink_tx_kib", 0) + step; break;
      case NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX: f[k].valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG; f[k].value.ullVal = gnum(i, "nvlink_rx_kib", 0) + step; break;
      default: if (!health_field(d, &f[k])) f[k].nvmlReturn = E_NOT_SUPPORTED;
    }
  }
  return OK;
}
#endif

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *n) {
  ENTER(d);
  if (!gnum(IDX(d), "mig_mode", 0)) return E_NOT_SUPPORTED;
  *n = MAXMIG;
  return OK;
}
nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int slot, nvmlDevice_t *out) {
  ENTER(d);
  unsigned long long v;
  if (slot >= MAXMIG) return E_ARG;
  if (!mig_field(IDX(d), (int)slot, 0, &v)) return E_NOT_FOUND;
  mig_t *m = &migs[IDX(d) * MAXMIG + slot];
  m->parent = IDX(d);
  m->slot = (int)slot;
  *out = (nvmlDevice_t)(void *)m;
  return OK;
}
nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t d, unsigned int *id) {
  if (!is_mig(d)) return E_ARG;
  nvmlReturn_t e = mig_enter(d);
  unsigned long long v = 0;
  if (e) return e;
  mig_field(((const mig_t *)(const void *)d)->parent, ((const mig_t *)(const void *)d)->slot, 0, &v);
  *id = (unsigned int)v;
  return OK;
}
nvmlReturn_t nvmlDeviceGetComputeInstanceId(nvmlDevice_t d, unsigned int *id) {
  if (!is_mig(d)) return E_ARG;
  nvmlReturn_t e = mig_enter(d);
  unsigned long long v = 0;
  if (e) return e;
  mig_field(((const mig_t *)(const void *)d)->parent, ((const mig_t *)(const void *)d)->slot, 1, &v);
  *id = (unsigned int)v;
  return OK;
}

/* ---- processes: procs=pid:bytes,pid:bytes ---- */
typedef nvmlProcessInfo_t proc_t;
typedef nvmlProcessInfo_v1_t proc1_t;
static unsigned int parse_procs(int i, unsigned int *pids, unsigned long long *mem, unsigned int max) {
  const char *p = gcfg(i, "procs");
  unsigned int n = 0;
  while (p && *p && n < max) {
    char *end;
    pids[n] = (unsigned int)strtoul(p, &end, 10);
    if (*end != ':') break;
    mem[n++] = strtoull(end + 1, &end, 10);
    p = *end == ',' ? end + 1 : end;
  }
  return n;
}
static nvmlReturn_t procs(nvmlDevice_t d, unsigned int *count, void *out, int v1) {
  ENTER(d);
  unsigned int pids[32];
  unsigned long long mem[32];
  unsigned int n = parse_procs(IDX(d), pids, mem, 32);
  if (!out || *count < n) { *count = n; return n ? E_SIZE : OK; }
  for (unsigned int k = 0; k < n; k++) {
    if (v1) { ((proc1_t *)out)[k].pid = pids[k]; ((proc1_t *)out)[k].usedGpuMemory = mem[k]; }
    else { proc_t *o = (proc_t *)out + k; o->pid = pids[k]; o->usedGpuMemory = mem[k]; o->gpuInstanceId = o->computeInstanceId = 0xFFFFFFFFu; }
  }
  *count = n;
  return OK;
}
#ifndef OMIT_nvmlDeviceGetComputeRunningProcesses_v3
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, proc_t *out) { return procs(d, count, out, 0); }
#endif
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t d, unsigned int *count, proc1_t *out) { return procs(d, count, out, 1); }

/* ---- events ---- */
typedef nvmlEventData_t event_t;
/* An event set handle points at this; the header leaves the struct to the library. */
struct nvmlEventSet_st { int unused; };
static struct nvmlEventSet_st set_token;
nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
  if (!inited) return E_UNINIT;
  nvmlReturn_t e = global_err("nvmlEventSetCreate");
  if (e) return e;
  *set = &set_token;
  return OK;
}
nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) { (void)set; return OK; }
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, nvmlEventSet_t set) {
  ENTER(d);
  (void)set;
  dev_t_ *dv = d;
  dv->registered |= types;
  const char *x = gcfg(dv->index, "xids");
  if (x && (types & nvmlEventTypeXidCriticalError)) {
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", x);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) fake_nvml_inject_xid((unsigned)dv->index, strtoull(t, NULL, 0));
  }
  return OK;
}
static nvmlReturn_t wait_event(nvmlEventSet_t set, event_t *out, unsigned int timeout_ms) {
  (void)set;
  if (!inited) return E_UNINIT;
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += timeout_ms / 1000;
  dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
  pthread_mutex_lock(&mu);
  for (;;) {
    while (qlen > 0) {
      int g = q[qhead].gpu;
      unsigned long long xid = q[qhead].xid;
      qhead = (qhead + 1) % QCAP;
      qlen--;
      if (g < 0 || g >= ngpus() || !(devs[g].registered & nvmlEventTypeXidCriticalError)) continue;
      memset(out, 0, sizeof *out);
      out->device = &devs[g];
      out->eventType = nvmlEventTypeXidCriticalError;
      out->eventData = xid;
      pthread_mutex_unlock(&mu);
      return OK;
    }
    if (pthread_cond_timedwait(&cv, &mu, &dl) != 0) break;
  }
  pthread_mutex_unlock(&mu);
  return E_TIMEOUT;
}
#ifndef OMIT_nvmlEventSetWait_v2
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, event_t *out, unsigned int timeout_ms) { return wait_event(set, out, timeout_ms); }
#endif
nvmlReturn_t nvmlEventSetWait(nvmlEventSet_t set, event_t *out, unsigned int timeout_ms) { return wait_event(set, out, timeout_ms); }

/* ---- health: recovery action, row remapping, retired pages, NVLink errors, PCIe replays, thermal margin ----
 * Keys: recovery_action (nvmlDeviceGpuRecoveryAction_t, default 0), remap_corr, remap_unc, remap_pending,
 * remap_failure, retired_sbe, retired_dbe, retired_pending, nvlink_links (default 0: no NVLink),
 * nvlink_crc, nvlink_replay, nvlink_recovery (every link), nvlink_err_step (added per call),
 * pcie_replay, pcie_replay_step (added per call), margin_temp (default 40).
 * Test controls: fake_nvml_reload_counters(gpu) starts the error counters again from 0, as a driver reload does;
 * fake_nvml_calls(gpu) says how many driver calls the GPU has answered. */
static long reload_mark[MAXGPU];
static int reloaded[MAXGPU];
void fake_nvml_reload_counters(unsigned int gpu) { if (gpu < MAXGPU) { reload_mark[gpu] = devs[gpu].calls; reloaded[gpu] = 1; } }
/* Driver calls GPU `gpu` has answered so far (lost_after counts the same calls). */
long fake_nvml_calls(unsigned int gpu) { return gpu < MAXGPU ? devs[gpu].calls : -1; }
/* A counter since driver load: base + step per call, from 0 again after a reload. */
static unsigned long long health_counter(nvmlDevice_t d, const char *base, const char *step) {
  int i = IDX(d);
  unsigned long long s = gnum(i, step, 0);
  if (reloaded[i]) return s * (unsigned long long)(CALLS(d) - reload_mark[i]);
  return gnum(i, base, 0) + s * (unsigned long long)CALLS(d);
}
static int health_field(nvmlDevice_t d, nvmlFieldValue_t *f) {
  int i = IDX(d);
  unsigned int links = (unsigned int)gnum(i, "nvlink_links", 0);
  switch (f->fieldId) {
    case NVML_FI_DEV_GET_GPU_RECOVERY_ACTION: f->valueType = NVML_VALUE_TYPE_UNSIGNED_INT; f->value.uiVal = (unsigned int)gnum(i, "recovery_action", 0); return 1;
    case NVML_FI_DEV_NVLINK_LINK_COUNT: f->valueType = NVML_VALUE_TYPE_UNSIGNED_INT; f->value.uiVal = links; return 1;
    case NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY: case NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY: case NVML_FI_DEV_NVLINK_ERROR_DL_CRC: /* scope: the link */
      if (f->scopeId >= links) { f->nvmlReturn = E_ARG; return 1; }
      f->valueType = NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
      f->value.ullVal = health_counter(d, f->fieldId == NVML_FI_DEV_NVLINK_ERROR_DL_REPLAY ? "nvlink_replay" : f->fieldId == NVML_FI_DEV_NVLINK_ERROR_DL_RECOVERY ? "nvlink_recovery" : "nvlink_crc", "nvlink_err_step");
      return 1;
    default: return 0;
  }
}
#ifndef OMIT_nvmlDeviceGetRemappedRows
nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned int *corr, unsigned int *unc, unsigned int *pending, unsigned int *failure) {
  ENTER(d);
  if (!corr || !unc || !pending || !failure) return E_ARG;
  int i = IDX(d);
  *corr = (unsigned int)gnum(i, "remap_corr", 0);
  *unc = (unsigned int)gnum(i, "remap_unc", 0);
  *pending = (unsigned int)gnum(i, "remap_pending", 0);
  *failure = (unsigned int)gnum(i, "remap_failure", 0);
  return OK;
}
#endif
#ifndef OMIT_nvmlDeviceGetRetiredPages
nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t d, nvmlPageRetirementCause_t cause, unsigned int *count, unsigned long long *addresses) {
  ENTER(d);
  if (!count || (cause != NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS && cause != NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)) return E_ARG;
  unsigned int n = (unsigned int)gnum(IDX(d), cause == NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS ? "retired_sbe" : "retired_dbe", 0);
  if (*count < n) { *count = n; return E_SIZE; }
  for (unsigned int k = 0; k < n && addresses; k++) addresses[k] = 0x100000ULL * (k + 1);
  *count = n;
  return OK;
}
#endif
#ifndef OMIT_nvmlDeviceGetRetiredPagesPendingStatus
nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t d, nvmlEnableState_t *pending) {
  ENTER(d);
  /* 0 NVML_FEATURE_DISABLED, 1 NVML_FEATURE_ENABLED; other values pass through (a driver answering garbage). */
  *pending = (nvmlEnableState_t)gnum(IDX(d), "retired_pending", NVML_FEATURE_DISABLED);
  return OK;
}
#endif
#ifndef OMIT_nvmlDeviceGetNvLinkErrorCounter
nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t d, unsigned int link, nvmlNvLinkErrorCounter_t counter, unsigned long long *value) {
  ENTER(d);
  if (link >= (unsigned int)gnum(IDX(d), "nvlink_links", 0) || (int)counter < 0 || counter > NVML_NVLINK_ERROR_DL_ECC_DATA) return E_ARG;
  *value = counter == NVML_NVLINK_ERROR_DL_REPLAY ? health_counter(d, "nvlink_replay", "nvlink_err_step")
         : counter == NVML_NVLINK_ERROR_DL_RECOVERY ? health_counter(d, "nvlink_recovery", "nvlink_err_step")
         : counter == NVML_NVLINK_ERROR_DL_CRC_FLIT ? health_counter(d, "nvlink_crc", "nvlink_err_step") : 0;
  return OK;
}
#endif
#ifndef OMIT_nvmlDeviceGetPcieReplayCounter
nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t d, unsigned int *value) {
  ENTER(d);
  *value = (unsigned int)health_counter(d, "pcie_replay", "pcie_replay_step");
  return OK;
}
#endif
typedef nvmlMarginTemperature_t margin_t;
#ifndef OMIT_nvmlDeviceGetMarginTemperature
nvmlReturn_t nvmlDeviceGetMarginTemperature(nvmlDevice_t d, margin_t *m) {
  ENTER(d);
  if (m->version != nvmlMarginTemperature_v1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  m->marginTemperature = (int)strtol(gcfg(IDX(d), "margin_temp") ? gcfg(IDX(d), "margin_temp") : "40", NULL, 0);
  return OK;
}
#endif

/* ---- GPM: its own file, same translation unit ---- */
#include "fake_gpm.c"
