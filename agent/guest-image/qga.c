/*
 * Test-guest QEMU guest agent: init starts it in the background. It answers the few commands of the
 * QEMU Guest Agent Protocol the host agent uses (agent/drivers/qemu-guest-agent.ts) on the
 * virtio-serial port named org.qemu.guest_agent.0 (agent/drivers/qemu-command.ts adds it):
 *
 *   {"execute":"guest-sync","arguments":{"id":N}}           -> {"return": N}
 *   {"execute":"guest-sync-delimited","arguments":{"id":N}} -> 0xFF {"return": N}
 *   {"execute":"guest-ping"}                                -> {"return": {}}
 *   {"execute":"guest-info"}                                -> {"return": {"version": ..., ...}}
 *   anything else                                           -> {"error": {"class": "CommandNotFound", ...}}
 *
 * A request's "id" member is echoed in the response, as QMP does. A 0xFF byte from the host resets the
 * parser (a client sends one before guest-sync so that a partial request of an earlier client is
 * dropped), and so does the host side closing the port.
 *
 * The port is found by name in /sys/class/virtio-ports/<vportNpM>/name; its device is /dev/<vportNpM>
 * (needs virtio_pci and virtio_console, which init loads). Nothing is written to the serial console
 * after startup: a stalled console must not stall the agent.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PORT_NAME "org.qemu.guest_agent.0"
#define MAX_REQUEST 4096
#define FIND_TRIES 100            /* 100 x 100 ms: the port shows up once the modules probed */
#define IDLE_NS 50000000L         /* 50 ms: read() returns 0 at once while no host client is connected */

static void say(const char *line) {
  ssize_t ignored = write(STDOUT_FILENO, line, strlen(line));
  (void)ignored;
}

static void nap(long ns) {
  struct timespec ts = {0, ns};
  nanosleep(&ts, NULL);
}

/* /dev/<vport> of the port named PORT_NAME into dev; 0 when found. */
static int find_port(char *dev, size_t size) {
  DIR *dir = opendir("/sys/class/virtio-ports");
  if (dir == NULL) return -1;
  struct dirent *entry;
  int found = -1;
  while (found != 0 && (entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] == '.') continue;
    char path[512];
    char name[128];
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", entry->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t n = read(fd, name, sizeof name - 1);
    close(fd);
    if (n <= 0) continue;
    name[n] = '\0';
    name[strcspn(name, "\n")] = '\0';
    if (strcmp(name, PORT_NAME) == 0) {
      snprintf(dev, size, "/dev/%s", entry->d_name);
      found = 0;
    }
  }
  closedir(dir);
  return found;
}

static int write_all(int fd, const char *data, size_t length) {
  while (length > 0) {
    ssize_t n = write(fd, data, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    data += n;
    length -= (size_t)n;
  }
  return 0;
}

/* ---- a JSON scanner just good enough to pick members out of one request object ---- */

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
  return p;
}

/* p at the opening quote: returns the position after the closing quote, NULL when unterminated. */
static const char *skip_string(const char *p, const char *end) {
  for (p++; p < end; p++) {
    if (*p == '\\') p++;
    else if (*p == '"') return p + 1;
  }
  return NULL;
}

static const char *skip_value(const char *p, const char *end) {
  if (p >= end) return NULL;
  if (*p == '"') return skip_string(p, end);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      if (*p == '"') {
        p = skip_string(p, end);
        if (p == NULL) return NULL;
        continue;
      }
      if (*p == '{' || *p == '[') depth++;
      else if (*p == '}' || *p == ']') {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return NULL;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\r' &&
         *p != '\n')
    p++;
  return p;
}

/* The raw text [*value, *value_end) of member `key` of the object [obj, end); 0 when found. */
static int find_member(const char *obj, const char *end, const char *key, const char **value,
                       const char **value_end) {
  size_t key_len = strlen(key);
  const char *p = skip_ws(obj, end);
  if (p >= end || *p != '{') return -1;
  p++;
  for (;;) {
    p = skip_ws(p, end);
    if (p >= end || *p != '"') return -1;
    const char *key_start = p + 1;
    p = skip_string(p, end);
    if (p == NULL) return -1;
    int match = (size_t)(p - 1 - key_start) == key_len && memcmp(key_start, key, key_len) == 0;
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return -1;
    p = skip_ws(p + 1, end);
    const char *v = p;
    p = skip_value(p, end);
    if (p == NULL) return -1;
    if (match) {
      *value = v;
      *value_end = p;
      return 0;
    }
    p = skip_ws(p, end);
    if (p >= end || *p != ',') return -1;
    p++;
  }
}

static int is_command(const char *value, const char *value_end, const char *name) {
  size_t len = strlen(name);
  return (size_t)(value_end - value) == len + 2 && value[0] == '"' && memcmp(value + 1, name, len) == 0;
}

static void handle(int fd, const char *req, size_t len) {
  const char *end = req + len;
  const char *exec, *exec_end, *id, *id_end, *args, *args_end, *sync, *sync_end;
  char out[1024];
  char tail[160] = "";
  size_t used = 0;
  if (find_member(req, end, "id", &id, &id_end) == 0 && id_end - id < 120) {
    snprintf(tail, sizeof tail, ", \"id\": %.*s", (int)(id_end - id), id);
  }
  if (find_member(req, end, "execute", &exec, &exec_end) != 0 || *exec != '"') {
    used = (size_t)snprintf(out, sizeof out,
                            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Expected 'execute' in QMP "
                            "input\"}%s}\n",
                            tail);
  } else if (is_command(exec, exec_end, "guest-sync") || is_command(exec, exec_end, "guest-sync-delimited")) {
    int delimited = is_command(exec, exec_end, "guest-sync-delimited");
    if (find_member(req, end, "arguments", &args, &args_end) != 0 ||
        find_member(args, args_end, "id", &sync, &sync_end) != 0 || sync_end - sync > 40) {
      used = (size_t)snprintf(out, sizeof out,
                              "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'id' is "
                              "missing\"}%s}\n",
                              tail);
    } else {
      used = (size_t)snprintf(out, sizeof out, "%s{\"return\": %.*s%s}\n", delimited ? "\xff" : "",
                              (int)(sync_end - sync), sync, tail);
    }
  } else if (is_command(exec, exec_end, "guest-ping")) {
    used = (size_t)snprintf(out, sizeof out, "{\"return\": {}%s}\n", tail);
  } else if (is_command(exec, exec_end, "guest-info")) {
    used = (size_t)snprintf(
        out, sizeof out,
        "{\"return\": {\"version\": \"vmmig-test-qga\", \"supported_commands\": ["
        "{\"enabled\": true, \"name\": \"guest-sync\", \"success-response\": true}, "
        "{\"enabled\": true, \"name\": \"guest-sync-delimited\", \"success-response\": true}, "
        "{\"enabled\": true, \"name\": \"guest-ping\", \"success-response\": true}, "
        "{\"enabled\": true, \"name\": \"guest-info\", \"success-response\": true}]}%s}\n",
        tail);
  } else {
    used = (size_t)snprintf(out, sizeof out,
                            "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command has not "
                            "been found\"}%s}\n",
                            tail);
  }
  if (used >= sizeof out) return;
  /* Blocks while no host client is connected; the next client discards it (guest-sync). */
  write_all(fd, out, used);
}

/* ---- request framing: one JSON object at a time, 0xFF and host disconnects reset ---- */

static char request[MAX_REQUEST];
static size_t request_len;
static int depth, in_string, escaped;

static void reset(void) { request_len = 0, depth = 0, in_string = 0, escaped = 0; }

static void feed(int fd, const unsigned char *data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = data[i];
    if (c == 0xFF) {
      reset();
      continue;
    }
    if (depth == 0 && c != '{') continue; /* whitespace (or garbage) between requests */
    if (request_len == MAX_REQUEST) {     /* too long to be ours: drop it */
      reset();
      continue;
    }
    request[request_len++] = (char)c;
    if (in_string) {
      if (escaped) escaped = 0;
      else if (c == '\\') escaped = 1;
      else if (c == '"') in_string = 0;
    } else if (c == '"') {
      in_string = 1;
    } else if (c == '{' || c == '[') {
      depth++;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) {
        handle(fd, request, request_len);
        reset();
      }
    }
  }
}

int main(void) {
  char dev[300];
  char line[400];
  int tries = 0;
  while (find_port(dev, sizeof dev) != 0 || access(dev, F_OK) != 0) {
    if (++tries >= FIND_TRIES) {
      say("QGA UNAVAILABLE no virtio port " PORT_NAME " (no virtio_console module, or no channel)\n");
      return 1;
    }
    nap(100000000L);
  }
  int fd = open(dev, O_RDWR | O_NOCTTY);
  if (fd < 0) {
    snprintf(line, sizeof line, "QGA UNAVAILABLE cannot open %s: %s\n", dev, strerror(errno));
    say(line);
    return 1;
  }
  snprintf(line, sizeof line, "QGA READY %s\n", dev);
  say(line);
  unsigned char buf[1024];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      feed(fd, buf, (size_t)n);
    } else if (n == 0) {
      /* No host client: whatever a former one sent half of is void. */
      reset();
      nap(IDLE_NS);
    } else if (errno != EINTR && errno != EAGAIN) {
      nap(IDLE_NS * 2);
    }
  }
}
