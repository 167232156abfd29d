/*
 * A compiled nvidia-smi replay: answers a call with the bytes recorded for exactly its
 * arguments, and costs no more CPU than writing them. The recordings are made from the
 * capture-driven fake (test/fake-nvidia-smi/nvidia-smi) by test/helpers/fake-smi-replay.ts;
 * the benchmarks use this replay so that the fake's own start-up cost (a Node process, about
 * 100 ms of CPU) does not land on whoever forks nvidia-smi per scrape.
 *
 *   FAKE_NVIDIA_SMI_REPLAY_DIR  directory of recordings (required)
 *   FAKE_NVIDIA_SMI_DELAY_MS    wait before the first answer: N or MIN-MAX (uniform), as the Node fake
 *
 * A recording is one file named by the FNV-1a 64-bit hash (16 hex digits) of its key:
 *   line 1   the key: the arguments without the loop ones, separated by 0x1f
 *   line 2   the exit status (decimal)
 *   rest     stdout, with every driver timestamp replaced by 23 bytes of 0x01, which are
 *            overwritten with the current local time ("YYYY/MM/DD HH:MM:SS.mmm") on output
 *
 * With --loop-ms=N / -lms N / --loop=S / -l S the recording is printed every interval, its first
 * line (the CSV header) only the first time unless the format says noheader, until stdout closes.
 * A call with no recording, or a recording for other arguments, exits 2 and says so on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_RECORDING (64u << 20)
#define TS_LEN 23

static void die(const char *what, const char *detail) {
  fprintf(stderr, "fake nvidia-smi replay: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(2);
}

static uint64_t fnv1a(const char *s, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

/* A non-negative decimal number that fits in a long, or -1. */
static long number(const char *s) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (*end || errno || v < 0) return -1;
  return v;
}

static void write_all(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      exit(0); /* stdout closed (the reader went away): done, as nvidia-smi would be */
    }
    p += w;
    n -= (size_t)w;
  }
}

static void sleep_ms(double ms) {
  if (ms <= 0) return;
  struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static double delay_ms(void) {
  const char *d = getenv("FAKE_NVIDIA_SMI_DELAY_MS");
  if (!d || !*d) return 0;
  char buf[64];
  if (strlen(d) >= sizeof buf) die("FAKE_NVIDIA_SMI_DELAY_MS is not N or MIN-MAX", d);
  strcpy(buf, d);
  char *dash = strchr(buf, '-');
  if (dash) *dash = 0;
  long a = number(buf), b = dash ? number(dash + 1) : a;
  if (a < 0 || b < a) die("FAKE_NVIDIA_SMI_DELAY_MS is not N or MIN-MAX", d);
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  srand((unsigned)(now.tv_nsec ^ getpid()));
  return (double)a + (double)rand() / RAND_MAX * (double)(b - a);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  const char *dir = getenv("FAKE_NVIDIA_SMI_REPLAY_DIR");
  if (!dir || !*dir) die("FAKE_NVIDIA_SMI_REPLAY_DIR is not set", NULL);

  /* The key: every argument but the loop ones, 0x1f-separated; the loop interval apart. */
  size_t keycap = 1;
  for (int i = 1; i < argc; i++) keycap += strlen(argv[i]) + 1;
  char *key = malloc(keycap);
  if (!key) die("out of memory", NULL);
  size_t keylen = 0;
  long loop_ms = 0;
  int noheader = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    long ms_per = 0;
    const char *val = NULL;
    if (!strncmp(a, "--loop-ms=", 10)) ms_per = 1, val = a + 10;
    else if (!strncmp(a, "-lms=", 5)) ms_per = 1, val = a + 5;
    else if (!strncmp(a, "--loop=", 7)) ms_per = 1000, val = a + 7;
    else if (!strncmp(a, "-l=", 3)) ms_per = 1000, val = a + 3;
    else if (!strcmp(a, "--loop-ms") || !strcmp(a, "-lms")) ms_per = 1, val = i + 1 < argc ? argv[++i] : "";
    else if (!strcmp(a, "--loop") || !strcmp(a, "-l")) ms_per = 1000, val = i + 1 < argc ? argv[++i] : "";
    if (ms_per) {
      long v = number(val);
      if (v <= 0 || v > 86400000 / ms_per) die("bad loop interval", val);
      loop_ms = v * ms_per;
      continue;
    }
    if (!strncmp(a, "--format=", 9) && strstr(a, "noheader")) noheader = 1;
    if (!strcmp(a, "--format") && i + 1 < argc && strstr(argv[i + 1], "noheader")) noheader = 1;
    if (keylen) key[keylen++] = 0x1f;
    size_t n = strlen(a);
    memcpy(key + keylen, a, n);
    keylen += n;
  }
  key[keylen] = 0;

  char path[4096];
  int pn = snprintf(path, sizeof path, "%s/%016llx", dir, (unsigned long long)fnv1a(key, keylen, 14695981039346656037ull));
  if (pn < 0 || (size_t)pn >= sizeof path) die("FAKE_NVIDIA_SMI_REPLAY_DIR is too long", NULL);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    for (size_t i = 0; i < keylen; i++)
      if (key[i] == 0x1f) key[i] = ' ';
    die("nothing recorded for these arguments", key);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) die("recording is not a regular file", path);
  if ((uint64_t)st.st_size > MAX_RECORDING) die("recording is larger than 64 MiB", path);
  size_t size = (size_t)st.st_size;
  char *rec = malloc(size + 1);
  if (!rec) die("out of memory", NULL);
  size_t got = 0;
  while (got < size) {
    ssize_t r = read(fd, rec + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) die("cannot read recording", path);
    got += (size_t)r;
  }
  close(fd);
  rec[size] = 0;

  /* Line 1: the key, which must be ours (a hash collision or a stale file is an error). */
  char *nl = memchr(rec, '\n', size);
  if (!nl || (size_t)(nl - rec) != keylen || memcmp(rec, key, keylen) != 0) die("recording is for other arguments", path);
  char *status_line = nl + 1;
  nl = memchr(status_line, '\n', size - (size_t)(status_line - rec));
  if (!nl) die("recording has no exit status line", path);
  *nl = 0;
  long status = number(status_line);
  if (status < 0 || status > 255) die("recording has a bad exit status", status_line);
  char *out = nl + 1;
  size_t outlen = size - (size_t)(out - rec);

  /* Where the timestamps go: runs of TS_LEN bytes of 0x01. */
  size_t nts = 0, tscap = 0, *ts = NULL;
  for (char *p = out; (p = memchr(p, 1, outlen - (size_t)(p - out))) != NULL;) {
    size_t run = 0;
    while ((size_t)(p - out) + run < outlen && p[run] == 1) run++;
    if (run != TS_LEN) die("recording has a broken timestamp placeholder", path);
    if (nts == tscap) {
      tscap = tscap ? tscap * 2 : 16;
      ts = realloc(ts, tscap * sizeof *ts);
      if (!ts) die("out of memory", NULL);
    }
    ts[nts++] = (size_t)(p - out);
    p += run;
  }

  /* After the first block of a loop, the header line goes unless there is none. */
  size_t skip = 0;
  if (!noheader) {
    char *h = memchr(out, '\n', outlen);
    skip = h ? (size_t)(h - out) + 1 : outlen;
  }

  sleep_ms(delay_ms());
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (int first = 1;; first = 0) {
    if (nts) {
      struct timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      struct tm tm;
      localtime_r(&now.tv_sec, &tm);
      char stamp[64];
      size_t sn = strftime(stamp, sizeof stamp, "%Y/%m/%d %H:%M:%S", &tm);
      unsigned ms = (unsigned)(now.tv_nsec / 1000000) % 1000;
      stamp[sn] = '.', stamp[sn + 1] = (char)('0' + ms / 100), stamp[sn + 2] = (char)('0' + ms / 10 % 10), stamp[sn + 3] = (char)('0' + ms % 10);
      if (sn + 4 != TS_LEN) die("the clock's year does not fit a driver timestamp", NULL);
      for (size_t i = 0; i < nts; i++) memcpy(out + ts[i], stamp, TS_LEN);
    }
    size_t from = first ? 0 : skip;
    write_all(out + from, outlen - from);
    if (!loop_ms || status != 0) break;
    next.tv_sec += loop_ms / 1000;
    next.tv_nsec += (loop_ms % 1000) * 1000000;
    if (next.tv_nsec >= 1000000000) next.tv_sec++, next.tv_nsec -= 1000000000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
  }
  return (int)status;
}
