/*
 * GPM (GPU Performance Monitoring) of the fake libnvidia-ml.so.1, included by fake_nvml.c (one
 * translation unit: it uses the config and device helpers there). Driver semantics: a sample is a
 * snapshot of cumulative counters; nvmlGpmMetricsGet computes each metric from the difference of
 * two samples of the same device or GPU instance over the time between them.
 *
 * Config keys (gpu.<i>. and gi<g>. prefixes as elsewhere):
 *   gpm=0|1                   the GPU supports GPM (default 1)
 *   gpm_metrics=1,2,...       the metric ids this GPU has (default: an H100's set)
 *   gpm.<id>=<value>          the metric's value over time: percent, or MiB/s for *_PER_SEC;
 *                             "nan", negative or absurd values are passed through as measured
 *   gi<g>.gpm.<id>=<value>    the same for MIG GPU instance g (falls back to gpm.<id>)
 *   gpm_support_version, gpm_metrics_version   the struct versions this "driver" accepts
 *   error.nvmlGpmSampleGet=<rc>, error.nvmlGpmMigSampleGet=<rc>, gi<g>.error.nvmlGpmMigSampleGet,
 *   error.nvmlGpmQueryDeviceSupport, error.nvmlGpmSampleAlloc, error.nvmlGpmMetricsGet
 * Build with -DOMIT_GPM to leave every GPM symbol out (a driver older than 520).
 * Test controls: fake_nvml_set_config(key, value) changes a key at run time;
 * fake_nvml_gpm_samples_outstanding() counts samples allocated and not freed.
 */

void fake_nvml_set_config(const char *key, const char *value) {
  for (int i = 0; i < cfg_n; i++) {
    if (!strcmp(cfg_key[i], key)) {
      free(cfg_val[i]);
      cfg_val[i] = strdup(value);
      return;
    }
  }
  if (cfg_n >= MAXKV) return;
  cfg_key[cfg_n] = strdup(key);
  cfg_val[cfg_n] = strdup(value);
  cfg_n++;
}

#ifndef OMIT_GPM

#define GPM_SLOTS (MAXMIG + 1) /* slot 0: the whole GPU; slot 1 + k: MIG slot k */
#define GPM_MAX_SAMPLES 1024
#define GPM_MAGIC 0x47504d53u

/* The GPM sample handle points at one of these; the header leaves the struct to the library. */
struct nvmlGpmSample_st {
  unsigned int magic;
  int freed, filled, gpu, slot;
  unsigned long long t_us;
  double acc[NVML_GPM_METRIC_MAX];
  /* A metric whose configured value was not finite over the interval ending at this sample. */
  unsigned char nonfinite[NVML_GPM_METRIC_MAX];
};
static struct nvmlGpmSample_st *gpm_pool[GPM_MAX_SAMPLES];
static int gpm_pool_n;
static double gpm_acc[MAXGPU][GPM_SLOTS][NVML_GPM_METRIC_MAX];
static unsigned long long gpm_last_us[MAXGPU][GPM_SLOTS];

int fake_nvml_gpm_samples_outstanding(void) {
  int n = 0;
  for (int i = 0; i < gpm_pool_n; i++) n += !gpm_pool[i]->freed;
  return n;
}

static int gpm_valid_sample(const struct nvmlGpmSample_st *s) {
  for (int i = 0; i < gpm_pool_n; i++) if (gpm_pool[i] == s) return !s->freed;
  return 0;
}

/* An H100's metrics: activities, tensor and FP pipes, DRAM, PCIe, 7 NVDEC, 7 NVJPG, 1 NVOFA, NVLink totals. */
static const char *gpm_default_metrics = "1,2,3,4,5,6,7,8,9,10,11,12,13,20,21,30,31,32,33,34,35,36,40,41,42,43,44,45,46,50,60,61";

static int gpm_has_metric(int gpu, unsigned int id) {
  const char *p = gcfg(gpu, "gpm_metrics");
  if (!p) p = gpm_default_metrics;
  while (*p) {
    char *end;
    unsigned long v = strtoul(p, &end, 10);
    if (end == p) break;
    if (v == id) return 1;
    p = *end == ',' ? end + 1 : end;
  }
  return 0;
}

/* The metric's configured value (over time) for a GPU (slot 0) or MIG slot. */
static double gpm_value(int gpu, int slot, unsigned int id) {
  char k[64];
  const char *v = NULL;
  if (slot > 0) {
    unsigned long long gi = 0;
    mig_field(gpu, slot - 1, 0, &gi);
    snprintf(k, sizeof k, "gi%llu.gpm.%u", gi, id);
    v = gcfg(gpu, k);
  }
  if (!v) {
    snprintf(k, sizeof k, "gpm.%u", id);
    v = gcfg(gpu, k);
  }
  return v ? strtod(v, NULL) : 0.0;
}

/* Advances the cumulative counters of a GPU or GPU instance to now and copies them into the sample. */
static void gpm_take(int gpu, int slot, struct nvmlGpmSample_st *s) {
  unsigned long long t = now_us();
  memset(s->nonfinite, 0, sizeof s->nonfinite);
  if (gpm_last_us[gpu][slot] && t > gpm_last_us[gpu][slot]) {
    double dt = (double)(t - gpm_last_us[gpu][slot]) / 1e6;
    /* Only the metrics this GPU has (parsed once per sample, not per id). */
    unsigned int ids[NVML_GPM_METRIC_MAX];
    int n = 0;
    const char *p = gcfg(gpu, "gpm_metrics");
    if (!p) p = gpm_default_metrics;
    while (*p && n < NVML_GPM_METRIC_MAX) {
      char *end;
      unsigned long v = strtoul(p, &end, 10);
      if (end == p) break;
      if (v > 0 && v < NVML_GPM_METRIC_MAX) ids[n++] = (unsigned int)v;
      p = *end == ',' ? end + 1 : end;
    }
    for (int k = 0; k < n; k++) {
      unsigned int id = ids[k];
      double v = gpm_value(gpu, slot, id);
      /* The counters stay finite: a NaN or infinite value marks this interval only. */
      s->nonfinite[id] = !isfinite(v);
      if (isfinite(v)) gpm_acc[gpu][slot][id] += v * dt;
    }
  }
  gpm_last_us[gpu][slot] = t;
  memcpy(s->acc, gpm_acc[gpu][slot], sizeof s->acc);
  s->t_us = t;
  s->gpu = gpu;
  s->slot = slot;
  s->filled = 1;
}

nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *out) {
  if (!inited) return E_UNINIT;
  if (!out) return E_ARG;
  nvmlReturn_t e = global_err("nvmlGpmSampleAlloc");
  if (e) return e;
  if (gpm_pool_n >= GPM_MAX_SAMPLES) return NVML_ERROR_MEMORY;
  struct nvmlGpmSample_st *s = calloc(1, sizeof *s);
  if (!s) return NVML_ERROR_MEMORY;
  s->magic = GPM_MAGIC;
  gpm_pool[gpm_pool_n++] = s;
  *out = s;
  return OK;
}

nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t s) {
  /* Freed samples stay in the pool (marked) so a double free is an error, not a crash. */
  if (!gpm_valid_sample(s)) return E_ARG;
  s->freed = 1;
  return OK;
}

nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t d, nvmlGpmSupport_t *support) {
  int gpu;
  if (is_mig(d)) {
    nvmlReturn_t e = mig_enter(d);
    if (e) return e;
    gpu = ((const mig_t *)(const void *)d)->parent;
  } else {
    ENTER(d);
    gpu = IDX(d);
  }
  if (!support) return E_ARG;
  if (support->version != (unsigned int)gnum(gpu, "gpm_support_version", NVML_GPM_SUPPORT_VERSION)) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  support->isSupportedDevice = gnum(gpu, "gpm", 1) ? 1 : 0;
  return OK;
}

nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t d, nvmlGpmSample_t s) {
  int gpu, slot;
  if (is_mig(d)) {
    /* A MIG device handle samples its GPU instance, as the header documents. */
    nvmlReturn_t e = mig_enter(d);
    if (e) return e;
    gpu = ((const mig_t *)(const void *)d)->parent;
    slot = 1 + ((const mig_t *)(const void *)d)->slot;
  } else {
    ENTER(d);
    gpu = IDX(d);
    slot = 0;
    /* In MIG mode the GPU is profiled per GPU instance only. */
    if (gnum(gpu, "mig_mode", 0)) return E_NOT_SUPPORTED;
  }
  if (!gpm_valid_sample(s)) return E_ARG;
  if (!gnum(gpu, "gpm", 1)) return E_NOT_SUPPORTED;
  gpm_take(gpu, slot, s);
  return OK;
}

#ifndef OMIT_nvmlGpmMigSampleGet
nvmlReturn_t nvmlGpmMigSampleGet(nvmlDevice_t d, unsigned int gpuInstanceId, nvmlGpmSample_t s) {
  if (is_mig(d)) return E_ARG; /* takes the parent GPU's handle, never a MIG device handle */
  ENTER(d);
  int gpu = IDX(d);
  if (!gnum(gpu, "mig_mode", 0)) return E_NOT_SUPPORTED;
  if (!gnum(gpu, "gpm", 1)) return E_NOT_SUPPORTED;
  if (!gpm_valid_sample(s)) return E_ARG;
  for (int slot = 0; slot < MAXMIG; slot++) {
    unsigned long long gi;
    if (!mig_field(gpu, slot, 0, &gi)) break;
    if (gi != gpuInstanceId) continue;
    char k[64];
    snprintf(k, sizeof k, "gi%u.error.nvmlGpmMigSampleGet", gpuInstanceId);
    const char *e = gcfg(gpu, k);
    if (e && atoi(e)) return (nvmlReturn_t)atoi(e);
    gpm_take(gpu, 1 + slot, s);
    return OK;
  }
  return E_NOT_FOUND;
}
#endif

static char *gpm_name(unsigned int id) {
  static char names[NVML_GPM_METRIC_MAX][24];
  snprintf(names[id], sizeof names[id], "metric_%u", id);
  return names[id];
}

nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *mg) {
  if (!inited) return E_UNINIT;
  if (!mg) return E_ARG;
  nvmlReturn_t e = global_err("nvmlGpmMetricsGet");
  if (e) return e;
  if (mg->version != (unsigned int)gnum(-1, "gpm_metrics_version", NVML_GPM_METRICS_GET_VERSION)) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  if (mg->numMetrics > NVML_GPM_METRIC_MAX) return E_ARG;
  struct nvmlGpmSample_st *a = mg->sample1, *b = mg->sample2;
  if (!gpm_valid_sample(a) || !gpm_valid_sample(b) || !a->filled || !b->filled) return E_ARG;
  if (a->gpu != b->gpu || a->slot != b->slot || b->t_us <= a->t_us) return E_ARG;
  double dt = (double)(b->t_us - a->t_us) / 1e6;
  for (unsigned int i = 0; i < mg->numMetrics; i++) {
    nvmlGpmMetric_t *m = &mg->metrics[i];
    m->value = 0;
    m->metricInfo.shortName = m->metricInfo.longName = m->metricInfo.unit = NULL;
    if (m->metricId == 0 || m->metricId >= NVML_GPM_METRIC_MAX) { m->nvmlReturn = E_ARG; continue; }
    if (!gpm_has_metric(a->gpu, m->metricId)) { m->nvmlReturn = E_NOT_SUPPORTED; continue; }
    m->nvmlReturn = OK;
    m->value = b->nonfinite[m->metricId] ? NAN : (b->acc[m->metricId] - a->acc[m->metricId]) / dt;
    m->metricInfo.shortName = m->metricInfo.longName = gpm_name(m->metricId);
  }
  return OK;
}

#endif /* OMIT_GPM */
