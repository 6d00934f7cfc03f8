/*
 * UDP load generator for DNS and NBNS (both carry a 16-bit ID at offset 0).
 *
 * Queries come from a template file (u16 big-endian length + bytes, repeated)
 * and are sent in rotation with the ID replaced by a running counter.  The
 * send time of every outstanding ID is kept in a 65536-slot table; a reply
 * whose ID has an outstanding slot yields one latency sample.  A slot that is
 * reused before its reply arrives counts as lost.
 *
 * Modes:
 *   -r RATE    open loop: send at RATE queries/s whatever the replies do;
 *   -w WINDOW  closed loop: keep WINDOW queries outstanding (if nothing comes
 *              back for 20 ms, the outstanding ones are written off as lost).
 * Bounds: -d seconds of sending, -n queries at most, then up to -T ms of
 * draining.  Latencies go into a log-linear histogram in 100 ns units (exact
 * below 12.8 us, then 64 sub-buckets per power of two, about 1.5 % wide).
 *
 * Paired targets (open loop only): with -s given more than once, the run
 * sends to one target at a time in turns of -S milliseconds (default 50), so
 * every target sees the full rate during its turns and any drift of the
 * machine slower than a few turns falls on all of them alike.  Each target
 * keeps its own counts and histogram; its rates are over its own turns.
 *
 * Output: one JSON object on stdout with the first target's figures; with
 * more targets, "beside" lists the others' figures in the same shape.
 * Usage: loadgen -s ADDR [-s ADDR ...] -p PORT -f QUERY_FILE (-r RATE | -w WINDOW)
 *                [-S SLICE_MS] [-d SECONDS] [-n COUNT] [-T DRAIN_MS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SUB 64
#define LINEAR 128
#define MAX_EXP 40
#define BUCKETS (LINEAR + (MAX_EXP - 7) * SUB)
#define STALL_NS 20000000LL
#define MAX_TARGETS 4

struct query {
    uint8_t *data;
    size_t len;
};

/* One server address and what was seen of it. */
struct target {
    int fd;
    uint64_t sent, received, lost, late, outstanding;
    int64_t max_latency, sum_latency;
    uint64_t hist[BUCKETS];
};

static struct query *queries;
static size_t query_count;
static struct target targets[MAX_TARGETS];
static size_t target_count;
static int64_t slots[65536];        /* send time of each outstanding ID, 0 if none */
static uint8_t slot_target[65536];  /* which target that ID was sent to */
static uint64_t sent, outstanding;  /* over all targets (IDs and the window) */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static size_t bucket_of(uint64_t units)
{
    if (units < LINEAR)
        return (size_t)units;
    int b = 63 - __builtin_clzll(units);
    if (b >= MAX_EXP)
        return BUCKETS - 1;
    return LINEAR + (size_t)(b - 7) * SUB + ((units >> (b - 6)) & (SUB - 1));
}

/* Middle of a bucket, in 100 ns units. */
static double bucket_value(size_t i)
{
    if (i < LINEAR)
        return (double)i;
    int b = 7 + (int)((i - LINEAR) / SUB);
    uint64_t sub = (i - LINEAR) % SUB;
    double low = (double)((SUB + sub) << (b - 6));
    return low + (double)(1ULL << (b - 6)) / 2.0;
}

static double percentile_us(const struct target *tg, double q)
{
    if (tg->received == 0)
        return 0.0;
    uint64_t wanted = (uint64_t)(q * (double)tg->received);
    if (wanted == 0)
        wanted = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BUCKETS; i++) {
        seen += tg->hist[i];
        if (seen >= wanted)
            return bucket_value(i) / 10.0;
    }
    return bucket_value(BUCKETS - 1) / 10.0;
}

static void load_queries(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    size_t cap = 16;
    queries = malloc(cap * sizeof *queries);
    uint8_t hdr[2];
    while (fread(hdr, 1, 2, f) == 2) {
        size_t len = ((size_t)hdr[0] << 8) | hdr[1];
        uint8_t *data = malloc(len < 2 ? 2 : len);
        if (len < 2 || fread(data, 1, len, f) != len) {
            fprintf(stderr, "%s: bad query record\n", path);
            exit(2);
        }
        if (query_count == cap)
            queries = realloc(queries, (cap *= 2) * sizeof *queries);
        queries[query_count++] = (struct query){data, len};
    }
    fclose(f);
    if (query_count == 0) {
        fprintf(stderr, "%s: no queries\n", path);
        exit(2);
    }
}

static int open_socket(const char *addr, int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int size = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0 || inet_pton(AF_INET, addr, &dst.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
        perror("connect");
        exit(2);
    }
    return fd;
}

/* An ID slot is about to be reused: its query, if still unanswered, is lost. */
static void forget_slot(uint16_t id)
{
    if (slots[id] != 0) {
        struct target *old = &targets[slot_target[id]];
        old->lost++;
        old->outstanding--;
        outstanding--;
        slots[id] = 0;
    }
}

static void send_one(size_t which)
{
    struct target *tg = &targets[which];
    struct query *q = &queries[sent % query_count];
    uint16_t id = (uint16_t)sent;
    q->data[0] = (uint8_t)(id >> 8);
    q->data[1] = (uint8_t)id;
    forget_slot(id);
    int64_t t = now_ns();
    if (send(tg->fd, q->data, q->len, 0) < 0) {
        tg->lost++;
    } else {
        slots[id] = t;
        slot_target[id] = (uint8_t)which;
        tg->outstanding++;
        outstanding++;
    }
    tg->sent++;
    sent++;
}

static void receive_all(size_t which)
{
    struct target *tg = &targets[which];
    uint8_t buf[2048];
    for (;;) {
        ssize_t n = recv(tg->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0)
            return; /* EAGAIN, or ICMP refusal reported as ECONNREFUSED */
        if (n < 2)
            continue;
        uint16_t id = (uint16_t)((buf[0] << 8) | buf[1]);
        if (slots[id] == 0 || slot_target[id] != which) {
            tg->late++;
            continue;
        }
        int64_t lat = now_ns() - slots[id];
        slots[id] = 0;
        tg->outstanding--;
        outstanding--;
        tg->received++;
        tg->hist[bucket_of((uint64_t)(lat / 100))]++;
        tg->sum_latency += lat;
        if (lat > tg->max_latency)
            tg->max_latency = lat;
    }
}

/* Returns the number of replies taken in. */
static uint64_t receive_every(void)
{
    uint64_t before = 0, after = 0;
    for (size_t i = 0; i < target_count; i++) {
        before += targets[i].received;
        receive_all(i);
        after += targets[i].received;
    }
    return after - before;
}

static void wait_readable(int64_t wait)
{
    if (wait <= 0)
        return;
    struct pollfd pfds[MAX_TARGETS];
    for (size_t i = 0; i < target_count; i++)
        pfds[i] = (struct pollfd){.fd = targets[i].fd, .events = POLLIN};
    struct timespec ts = {.tv_sec = wait / 1000000000LL, .tv_nsec = wait % 1000000000LL};
    ppoll(pfds, target_count, &ts, NULL);
}

static void write_off_outstanding(void)
{
    memset(slots, 0, sizeof slots);
    for (size_t i = 0; i < target_count; i++) {
        targets[i].lost += targets[i].outstanding;
        targets[i].outstanding = 0;
    }
    outstanding = 0;
}

/* Time target `which` had the turn, out of `total` ns cut into turns of `slice` ns. */
static int64_t turn_time(size_t which, int64_t total, int64_t slice)
{
    if (target_count == 1)
        return total;
    int64_t turns = total / slice, rest = total % slice, n = (int64_t)target_count;
    int64_t mine = turns / n + ((int64_t)which < turns % n ? 1 : 0);
    return mine * slice + ((int64_t)which == turns % n ? rest : 0);
}

static void print_target(const struct target *tg, double elapsed)
{
    if (elapsed <= 0)
        elapsed = 1e-9;
    printf("\"sent\": %llu, \"received\": %llu, \"lost\": %llu, \"late\": %llu, "
           "\"elapsed_s\": %.6f, \"offered_qps\": %.1f, \"answered_qps\": %.1f, "
           "\"mean_us\": %.2f, \"p50_us\": %.2f, \"p90_us\": %.2f, \"p99_us\": %.2f, "
           "\"p999_us\": %.2f, \"max_us\": %.2f",
           (unsigned long long)tg->sent, (unsigned long long)tg->received,
           (unsigned long long)tg->lost, (unsigned long long)tg->late, elapsed,
           (double)tg->sent / elapsed, (double)tg->received / elapsed,
           tg->received ? (double)tg->sum_latency / (double)tg->received / 1000.0 : 0.0,
           percentile_us(tg, 0.50), percentile_us(tg, 0.90), percentile_us(tg, 0.99),
           percentile_us(tg, 0.999), (double)tg->max_latency / 1000.0);
}

static int usage(void)
{
    fprintf(stderr, "usage: loadgen -s ADDR [-s ADDR ...] -p PORT -f FILE (-r RATE | -w WINDOW) "
                    "[-S SLICE_MS] [-d S] [-n N] [-T MS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *addrs[MAX_TARGETS], *path = NULL;
    int port = 53, opt;
    double rate = 0, seconds = 1.0;
    uint64_t window = 0, max_count = 1000000000ULL;
    int64_t drain_ms = 1000, slice_ms = 50;
    while ((opt = getopt(argc, argv, "s:p:f:r:w:d:n:T:S:")) != -1) {
        switch (opt) {
        case 's':
            if (target_count == MAX_TARGETS)
                return usage();
            addrs[target_count++] = optarg;
            break;
        case 'p': port = atoi(optarg); break;
        case 'f': path = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'w': window = strtoull(optarg, NULL, 10); break;
        case 'd': seconds = atof(optarg); break;
        case 'n': max_count = strtoull(optarg, NULL, 10); break;
        case 'T': drain_ms = atoll(optarg); break;
        case 'S': slice_ms = atoll(optarg); break;
        default: return usage();
        }
    }
    if (target_count == 0)
        addrs[target_count++] = "127.0.0.1";
    if (path == NULL || (rate <= 0) == (window == 0) || window > 30000 || slice_ms <= 0 ||
        (target_count > 1 && window > 0))
        return usage();
    load_queries(path);
    for (size_t i = 0; i < target_count; i++)
        targets[i].fd = open_socket(addrs[i], port);
    int64_t slice = slice_ms * 1000000LL;
    int64_t start = now_ns(), end = start + (int64_t)(seconds * 1e9), last_send = start;
    int64_t last_progress = start;
    while (sent < max_count && now_ns() < end) {
        int64_t t = now_ns();
        if (rate > 0) {
            size_t turn = (size_t)(((t - start) / slice) % (int64_t)target_count);
            uint64_t due = (uint64_t)((double)(t - start) * rate / 1e9) + 1;
            while (sent < due && sent < max_count)
                send_one(turn);
        } else {
            if (t - last_progress > STALL_NS)
                write_off_outstanding();
            while (outstanding < window && sent < max_count)
                send_one(0);
        }
        last_send = now_ns();
        uint64_t got = receive_every();
        if (got)
            last_progress = now_ns();
        int64_t next = rate > 0 ? start + (int64_t)((double)sent * 1e9 / rate) : t + STALL_NS;
        if (!got)
            wait_readable(next - now_ns());
    }
    int64_t drain_end = now_ns() + drain_ms * 1000000LL;
    while (outstanding > 0 && now_ns() < drain_end) {
        wait_readable(1000000LL);
        receive_every();
    }
    int64_t total = last_send - start;
    for (size_t i = 0; i < target_count; i++) {
        targets[i].lost += targets[i].outstanding;
        targets[i].outstanding = 0;
    }
    printf("{");
    print_target(&targets[0], (double)turn_time(0, total, slice) / 1e9);
    if (target_count > 1) {
        printf(", \"slice_ms\": %lld, \"beside\": [", (long long)slice_ms);
        for (size_t i = 1; i < target_count; i++) {
            printf(i > 1 ? ", {" : "{");
            print_target(&targets[i], (double)turn_time(i, total, slice) / 1e9);
            printf("}");
        }
        printf("]");
    }
    printf("}\n");
    return 0;
}
