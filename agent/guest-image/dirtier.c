/*
 * Test-guest workload: /init of the test initramfs execs it, so it runs as PID 1.
 *
 * Reads from /proc/cmdline:
 *   fill_mb=<M>     MiB filled with non-zero data at boot (so migration cannot skip them as zero pages)
 *   dirty_mibs=<N>  MiB/s of memory rewritten, fractional allowed, 0 = idle
 * Then, forever: rewrites memory at that rate, touching every 4 KiB page of its region in turn, and
 * prints "HB <counter>" once a second on the serial console so the host can tell the guest is alive.
 *
 * Every page rewrite first checks that the page still holds what was last written there: a live
 * migration that lost a write shows up as "DIRTIER CORRUPT ..." on the console.
 *
 * The rewritten region is the filled one; with fill_mb=0 and a non-zero rate it is DEFAULT_REGION_MB,
 * so the rate still dirties distinct pages between two migration passes.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE 4096UL
#define MIB (1024UL * 1024UL)
#define DEFAULT_REGION_MB 32UL
#define TICK_NS 10000000L /* 10 ms: fine enough that the rate is smooth within a migration pass */

static double cmdline_number(const char *cmdline, const char *key, double fallback) {
  size_t key_len = strlen(key);
  const char *p = cmdline;
  while ((p = strstr(p, key)) != NULL) {
    int at_word_start = (p == cmdline) || p[-1] == ' ';
    if (at_word_start && p[key_len] == '=') return strtod(p + key_len + 1, NULL);
    p += key_len;
  }
  return fallback;
}

static void read_cmdline(char *buf, size_t size) {
  buf[0] = '\0';
  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_console(void) {
  int fd = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);
  return fd >= 0 ? fd : STDOUT_FILENO;
}

static void say(int fd, const char *line) {
  ssize_t ignored = write(fd, line, strlen(line));
  (void)ignored;
}

/*
 * QEMU's TCG (software emulation, what the tests run) only notices a guest write to a page for dirty
 * tracking on the first write after that page's soft-TLB entry was (re)filled. When a migration pass
 * re-arms tracking, entries already in the soft TLB are not reset here, so later writes through them
 * go unseen and the destination gets stale pages (seen on QEMU 7.2: multi-pass pre-copy and post-copy
 * after a pass panic the destination kernel). A context switch between two processes reloads CR3,
 * which flushes the whole soft TLB; a second process that wakes every couple of milliseconds keeps
 * that window small. Under KVM this costs next to nothing.
 */
static void start_tlb_flusher(void) {
  if (fork() != 0) return;
  struct timespec nap = {0, 2000000L};
  for (;;) nanosleep(&nap, NULL);
}

int main(void) {
  char cmdline[4096];
  char line[160];
  read_cmdline(cmdline, sizeof cmdline);
  double dirty_mibs = cmdline_number(cmdline, "dirty_mibs", 0.0);
  double fill_mb = cmdline_number(cmdline, "fill_mb", 0.0);
  if (dirty_mibs < 0) dirty_mibs = 0;
  if (fill_mb < 0) fill_mb = 0;

  int console = open_console();
  start_tlb_flusher();
  size_t region_mb = fill_mb > 0 ? (size_t)fill_mb : (dirty_mibs > 0 ? DEFAULT_REGION_MB : 0);
  size_t pages = region_mb * MIB / PAGE_SIZE;
  uint8_t *region = NULL;
  if (pages > 0) {
    region = mmap(NULL, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
      snprintf(line, sizeof line, "DIRTIER cannot map %zu MiB\n", region_mb);
      say(console, line);
      region = NULL;
      pages = 0;
    } else if (fill_mb > 0) {
      memset(region, 0xA5, pages * PAGE_SIZE);
    }
  }
  snprintf(line, sizeof line, "DIRTIER dirty_mibs=%.3f fill_mb=%.0f region_mb=%zu\n", dirty_mibs, fill_mb,
           pages * PAGE_SIZE / MIB);
  say(console, line);

  /* What each page must hold (0xA5 fill or 0 until first rewritten): the integrity check's reference. */
  uint64_t *expected = NULL;
  if (pages > 0) {
    expected = mmap(NULL, pages * sizeof *expected, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (expected == MAP_FAILED) expected = NULL;
    for (size_t i = 0; expected != NULL && i < pages; i++) expected[i] = fill_mb > 0 ? 0xA5A5A5A5A5A5A5A5ULL : 0;
  }
  unsigned long corrupt_reports = 0;

  double pages_per_second = pages > 0 ? dirty_mibs * MIB / PAGE_SIZE : 0;
  double start = now_seconds();
  double page_debt = 0;
  size_t next_page = 0;
  uint64_t stamp = 1;
  unsigned long heartbeat = 0;
  double next_heartbeat = start;
  double last = start;
  struct timespec tick = {0, TICK_NS};

  for (;;) {
    double now = now_seconds();
    page_debt += (now - last) * pages_per_second;
    last = now;
    /* Cap the backlog at one second so a guest paused by migration does not burst afterwards. */
    if (page_debt > pages_per_second) page_debt = pages_per_second;
    while (page_debt >= 1.0) {
      volatile uint64_t *word = (volatile uint64_t *)(region + next_page * PAGE_SIZE);
      if (expected != NULL && *word != expected[next_page] && corrupt_reports++ < 10) {
        snprintf(line, sizeof line, "DIRTIER CORRUPT page=%zu expected=%llu found=%llu\n", next_page,
                 (unsigned long long)expected[next_page], (unsigned long long)*word);
        say(console, line);
      }
      *word = stamp;
      if (expected != NULL) expected[next_page] = stamp;
      stamp++;
      next_page = (next_page + 1) % pages;
      page_debt -= 1.0;
    }
    if (now >= next_heartbeat) {
      snprintf(line, sizeof line, "HB %lu\n", heartbeat++);
      say(console, line);
      next_heartbeat += 1.0;
      if (next_heartbeat < now) next_heartbeat = now + 1.0;
    }
    nanosleep(&tick, NULL);
  }
}
