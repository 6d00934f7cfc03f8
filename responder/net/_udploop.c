/*
 * responder.net._udploop: the UDP drain loop of responder/net/udp.py, compiled.
 *
 * Profiling the daemon under load put most of its per-datagram CPU time in
 * the interpreter around the system calls: the bound-method calls for
 * recvfrom and sendto, the (host, port) tuple, the handler call. The answer
 * itself was already one dict lookup. This module runs that same loop in C:
 *
 *   recvfrom -> look the datagram after its 2-byte ID up in a repeat table
 *   (a dict the Python fast paths fill: datagram[2:] -> reply[2:]) -> on a
 *   hit, send ID + stored bytes with one sendmsg and no Python object but
 *   the lookup key; on a miss, call the Python handler exactly as the pure
 *   Python loop does, and send what it returns.
 *
 * So this module decides nothing about any protocol: every reply it sends
 * is either one the handler returned or one the handler's fast path stored
 * for these exact bytes. It never writes the table. The pure Python loop
 * in responder/net/udp.py stays the reference and the fallback.
 *
 * A service may also pass a Guard (below), the C mirror of the policy in
 * protocols/ratelimit.py, built from parameters Python computed: a datagram
 * from a reflection source (port 0, a listed port, a broadcast, multicast
 * or unspecified address) is dropped before the table or the handler sees
 * it, and every reply, repeat or handler's, is charged to its destination's
 * bucket; a limited one is dropped or replaced by the service's slip
 * function's truncated form (a Python call, made for limited replies only).
 *
 * Runs with the GIL held, on the event loop's thread; the socket is
 * non-blocking, so no call here waits.
 *
 * Failures. Whatever goes wrong with one datagram (its source address, an
 * allocation, a lookup in the table) loses that datagram only: it is counted
 * as dropped, its exception is kept for Python to log, and the loop goes on.
 * The counts are copied into the caller's buffer before drain returns or
 * raises, so not even a MemoryError at the very end loses them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <netinet/in.h>

#define MAX_DATAGRAM 65535
#define ID_SIZE 2

/* What one drain call counts, in the layout of the caller's buffer. */
typedef struct {
    int64_t received;   /* datagrams taken from the socket */
    int64_t answered;   /* replies sent */
    int64_t dropped;    /* replies the kernel refused, and datagrams lost to an error here */
    int64_t recv_errno; /* the receive error that ended the loop (never EAGAIN), or 0 */
    int64_t repeated;   /* of answered: replies to datagrams found in repeats */
} Counts;

/* The source address as Python's socket module gives it: (host, port) for
 * IPv4, (host, port, flowinfo, scope_id) for IPv6. Any other family (the
 * loop was given some other kind of socket) is an OSError. */
static PyObject *
source_tuple(const struct sockaddr_storage *addr, socklen_t len)
{
    if (len < (socklen_t)sizeof addr->ss_family ||
        (addr->ss_family != AF_INET && addr->ss_family != AF_INET6)) {
        PyErr_SetString(PyExc_OSError, "source address is not IPv4 or IPv6");
        return NULL;
    }
    char host[NI_MAXHOST];
    int rc = getnameinfo((const struct sockaddr *)addr, len, host, sizeof host, NULL, 0,
                         NI_NUMERICHOST);
    if (rc != 0) {
        PyErr_Format(PyExc_OSError, "unprintable source address: %s", gai_strerror(rc));
        return NULL;
    }
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
        return Py_BuildValue("(sHkk)", host, ntohs(a6->sin6_port),
                             (unsigned long)ntohl(a6->sin6_flowinfo),
                             (unsigned long)a6->sin6_scope_id);
    }
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)addr;
    return Py_BuildValue("(sH)", host, ntohs(a4->sin_port));
}

/* Send head[0:head_len] + body[0:body_len] to addr; 1 if sent, 0 if dropped. */
static int
send_reply(int fd, const char *head, size_t head_len, const char *body, size_t body_len,
           const struct sockaddr_storage *addr, socklen_t addr_len)
{
    struct iovec parts[2] = {
        {.iov_base = (void *)head, .iov_len = head_len},
        {.iov_base = (void *)body, .iov_len = body_len},
    };
    struct msghdr msg = {
        .msg_name = (void *)addr,
        .msg_namelen = addr_len,
        .msg_iov = parts,
        .msg_iovlen = body_len ? 2 : 1,
    };
    return sendmsg(fd, &msg, MSG_DONTWAIT) >= 0;
}

/* ---------------------------------------------------------------- the guard
 *
 * _udploop.Guard: the C mirror of protocols/ratelimit.py's Guard (read its
 * docstring for the policy: reflection filter, then per-prefix GCRA buckets
 * in a fixed table). Python computes every parameter; this code only
 * applies them, and tests compare the two implementations call for call. */

#define PORT_BITMAP (65536 / 8)
#define RULE_SIZE 18
#define WAYS 4
enum { SEND, DROP, SLIP };
enum { PORT_ZERO, REFLECTION_PORT, BAD_SOURCE, LIMITED_DROPPED, LIMITED_SLIPPED, LOG_ONLY,
       N_COUNTERS };

typedef struct {
    uint8_t len;  /* 4 or 16 */
    uint8_t bits; /* prefix length */
    uint8_t addr[16];
} Rule;

typedef struct {
    int64_t tat;      /* ns: when the bucket is full again */
    uint32_t limited; /* answers limited so far, for slip */
    uint8_t len;      /* 0: free, else the key's length */
    uint8_t key[16];  /* the masked source prefix */
} Bucket;

typedef struct {
    PyObject_HEAD
    uint8_t ports[PORT_BITMAP];
    Rule *bad, *exempt;
    Py_ssize_t n_bad, n_exempt;
    int64_t interval, heavy_interval, tolerance;
    long slip;
    int log_only;
    int v4_bits, v6_bits;
    uint8_t heavy[16];
    Py_ssize_t heavy_len;
    Bucket *table;
    uint64_t mask, seed;
    PyObject *slip_fn; /* reply -> truncated reply or None; may be None */
    int64_t counts[N_COUNTERS];
} Guard;

/* Does addr[0:len] fall in rule's prefix? */
static int
rule_matches(const Rule *rule, const uint8_t *addr, size_t len)
{
    if (rule->len != len)
        return 0;
    int bits = rule->bits, i = 0;
    for (; bits >= 8; bits -= 8, i++)
        if (addr[i] != rule->addr[i])
            return 0;
    if (bits == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xFF << (8 - bits));
    return (addr[i] & mask) == (rule->addr[i] & mask);
}

static int
any_rule(const Rule *rules, Py_ssize_t n, const uint8_t *addr, size_t len)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (rule_matches(&rules[i], addr, len))
            return 1;
    return 0;
}

/* 1 (and counted) when a datagram from addr:port must be dropped unread. */
static int
guard_rejects(Guard *g, const uint8_t *addr, size_t len, unsigned port)
{
    if (g->ports[port >> 3] & (1u << (port & 7))) {
        g->counts[port ? REFLECTION_PORT : PORT_ZERO]++;
        return 1;
    }
    if (any_rule(g->bad, g->n_bad, addr, len)) {
        g->counts[BAD_SOURCE]++;
        return 1;
    }
    return 0;
}

/* The bucket of addr's prefix: the one holding it, else the free or least
 * charged (smallest tat) of its WAYS slots, reset for it. */
static Bucket *
guard_bucket(Guard *g, const uint8_t *addr, size_t len)
{
    uint8_t key[16] = {0};
    int bits = len == 4 ? g->v4_bits : g->v6_bits;
    for (size_t i = 0; i < len; i++, bits -= 8)
        key[i] = bits >= 8 ? addr[i] : bits > 0 ? addr[i] & (uint8_t)(0xFF << (8 - bits)) : 0;
    uint64_t h = g->seed ^ len; /* FNV-1a, seeded per table */
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 0x100000001b3ULL;
    h ^= h >> 32;
    Bucket *victim = NULL;
    for (uint64_t way = 0; way < WAYS; way++) {
        Bucket *b = &g->table[(h + way) & g->mask];
        if (b->len == len && memcmp(b->key, key, len) == 0)
            return b;
        if (victim == NULL || (b->len ? b->tat : -1) < (victim->len ? victim->tat : -1))
            victim = b;
    }
    victim->len = (uint8_t)len;
    memcpy(victim->key, key, sizeof key);
    victim->tat = 0;
    victim->limited = 0;
    return victim;
}

/* SEND, DROP or SLIP for one answer to addr at now (ns); counted. */
static int
guard_admit(Guard *g, const uint8_t *addr, size_t len, int64_t now, int heavy)
{
    if (g->interval == 0 || any_rule(g->exempt, g->n_exempt, addr, len))
        return SEND;
    Bucket *b = guard_bucket(g, addr, len);
    int64_t tat = (b->tat > now ? b->tat : now) + (heavy ? g->heavy_interval : g->interval);
    if (tat - now <= g->tolerance) {
        b->tat = tat;
        return SEND;
    }
    b->limited++;
    int verdict = g->slip && b->limited % (uint32_t)g->slip == 0 ? SLIP : DROP;
    if (g->log_only) {
        g->counts[LOG_ONLY]++;
        return SEND;
    }
    g->counts[verdict == SLIP ? LIMITED_SLIPPED : LIMITED_DROPPED]++;
    return verdict;
}

/* Copy a rules blob into a new array; 0, or -1 with an exception set. */
static int
load_rules(Py_buffer *blob, Rule **rules, Py_ssize_t *n)
{
    if (blob->len % RULE_SIZE) {
        PyErr_SetString(PyExc_ValueError, "rules must be 18-byte entries");
        return -1;
    }
    *n = blob->len / RULE_SIZE;
    *rules = PyMem_Calloc((size_t)*n + 1, sizeof(Rule));
    if (*rules == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    const uint8_t *p = blob->buf;
    for (Py_ssize_t i = 0; i < *n; i++, p += RULE_SIZE) {
        Rule *r = &(*rules)[i];
        r->len = p[0];
        r->bits = p[1];
        memcpy(r->addr, p + 2, 16);
        if ((r->len != 4 && r->len != 16) || r->bits > 8 * r->len) {
            PyErr_SetString(PyExc_ValueError, "a rule has a bad length or prefix");
            return -1;
        }
    }
    return 0;
}

static void
guard_dealloc(Guard *g)
{
    PyMem_Free(g->bad);
    PyMem_Free(g->exempt);
    PyMem_Free(g->table);
    Py_XDECREF(g->slip_fn);
    Py_TYPE(g)->tp_free((PyObject *)g);
}

static int
guard_configure(Guard *g, Py_buffer *ports, Py_buffer *bad, Py_buffer *exempt,
                Py_buffer *heavy, Py_ssize_t size)
{
    if (ports->len != PORT_BITMAP || heavy->len > 16 || size < WAYS || (size & (size - 1)) ||
        g->interval < 0 || g->heavy_interval < 0 || g->tolerance < 0 || g->slip < 0 ||
        g->v4_bits < 0 || g->v4_bits > 32 || g->v6_bits < 0 || g->v6_bits > 128) {
        PyErr_SetString(PyExc_ValueError, "invalid guard parameters");
        return -1;
    }
    memcpy(g->ports, ports->buf, PORT_BITMAP);
    memcpy(g->heavy, heavy->buf, (size_t)heavy->len);
    g->heavy_len = heavy->len;
    if (load_rules(bad, &g->bad, &g->n_bad) < 0 || load_rules(exempt, &g->exempt, &g->n_exempt) < 0)
        return -1;
    g->table = PyMem_Calloc((size_t)size, sizeof(Bucket));
    if (g->table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    g->mask = (uint64_t)size - 1;
    return 0;
}

static PyObject *guard_new(PyTypeObject *type, PyObject *args, PyObject *kwargs);

static PyObject *
guard_check_source(Guard *g, PyObject *args)
{
    Py_buffer addr;
    unsigned int port;
    if (!PyArg_ParseTuple(args, "y*I:check_source", &addr, &port))
        return NULL;
    int bad = (addr.len == 4 || addr.len == 16) && port < 65536 &&
              guard_rejects(g, addr.buf, (size_t)addr.len, port);
    PyBuffer_Release(&addr);
    return PyBool_FromLong(bad);
}

static PyObject *
guard_admit_py(Guard *g, PyObject *args)
{
    Py_buffer addr;
    long long now;
    int heavy;
    if (!PyArg_ParseTuple(args, "y*Lp:admit", &addr, &now, &heavy))
        return NULL;
    if (addr.len != 4 && addr.len != 16) {
        PyBuffer_Release(&addr);
        PyErr_SetString(PyExc_ValueError, "address must be 4 or 16 bytes");
        return NULL;
    }
    int verdict = guard_admit(g, addr.buf, (size_t)addr.len, now, heavy);
    PyBuffer_Release(&addr);
    return PyLong_FromLong(verdict);
}

static PyObject *
guard_counts(Guard *g, PyObject *unused)
{
    (void)unused;
    PyObject *out = PyTuple_New(N_COUNTERS);
    for (Py_ssize_t i = 0; out != NULL && i < N_COUNTERS; i++)
        PyTuple_SET_ITEM(out, i, PyLong_FromLongLong(g->counts[i]));
    return out;
}

static PyObject *
guard_sources(Guard *g, PyObject *unused)
{
    (void)unused;
    Py_ssize_t used = 0;
    for (uint64_t i = 0; i <= g->mask; i++)
        used += g->table[i].len != 0;
    return PyLong_FromSsize_t(used);
}

static PyMethodDef guard_methods[] = {
    {"check_source", (PyCFunction)guard_check_source, METH_VARARGS,
     "check_source(packed, port) -> bool: drop (and count) a datagram from there"},
    {"admit", (PyCFunction)guard_admit_py, METH_VARARGS,
     "admit(packed, now_ns, heavy) -> 0 send, 1 drop, 2 slip (counted)"},
    {"counts", (PyCFunction)guard_counts, METH_NOARGS, "the counters, in COUNTER_NAMES order"},
    {"sources", (PyCFunction)guard_sources, METH_NOARGS, "buckets in use"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GuardType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "responder.net._udploop.Guard",
    .tp_basicsize = sizeof(Guard),
    .tp_dealloc = (destructor)guard_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Guard(ports, bad, exempt, interval, heavy_interval, tolerance, slip, log_only,\n"
              "      v4_bits, v6_bits, heavy_suffix, table_size, seed, slip_fn)\n"
              "The C mirror of protocols.ratelimit.Guard; see there.",
    .tp_methods = guard_methods,
    .tp_new = guard_new,
};

static PyObject *
guard_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    (void)kwargs;
    Py_buffer ports, bad, exempt, heavy;
    long long interval, heavy_interval, tolerance;
    unsigned long long seed;
    Py_ssize_t size;
    PyObject *slip_fn;
    Guard *g = (Guard *)type->tp_alloc(type, 0);
    if (g == NULL)
        return NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*LLLlpiiy*nKO:Guard", &ports, &bad, &exempt, &interval,
                          &heavy_interval, &tolerance, &g->slip, &g->log_only, &g->v4_bits,
                          &g->v6_bits, &heavy, &size, &seed, &slip_fn)) {
        Py_DECREF(g);
        return NULL;
    }
    g->interval = interval;
    g->heavy_interval = heavy_interval;
    g->tolerance = tolerance;
    g->seed = seed;
    g->slip_fn = slip_fn == Py_None ? NULL : Py_NewRef(slip_fn);
    int rc = guard_configure(g, &ports, &bad, &exempt, &heavy, size);
    PyBuffer_Release(&ports);
    PyBuffer_Release(&bad);
    PyBuffer_Release(&exempt);
    PyBuffer_Release(&heavy);
    if (rc < 0) {
        Py_DECREF(g);
        return NULL;
    }
    return (PyObject *)g;
}

/* The source's address bytes and port; 0 when it is neither IPv4 nor IPv6. */
static size_t
source_bytes(const struct sockaddr_storage *src, const uint8_t **addr, unsigned *port)
{
    if (src->ss_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)src;
        *addr = (const uint8_t *)&a4->sin_addr;
        *port = ntohs(a4->sin_port);
        return 4;
    }
    if (src->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)src;
        *addr = (const uint8_t *)&a6->sin6_addr;
        *port = ntohs(a6->sin6_port);
        return 16;
    }
    return 0;
}

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* time.monotonic_ns()'s clock */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The limited answer head+body replaced by slip_fn(answer), if that gives
 * bytes; 0, or -1 with an exception set. */
static int
send_slip(Guard *g, int fd, const char *head, size_t head_len, const char *body,
          size_t body_len, const struct sockaddr_storage *src, socklen_t src_len, Counts *counts)
{
    if (g->slip_fn == NULL)
        return 0;
    PyObject *reply = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(head_len + body_len));
    if (reply == NULL)
        return -1;
    memcpy(PyBytes_AS_STRING(reply), head, head_len);
    if (body_len) /* body may be NULL when empty (a handler's reply) */
        memcpy(PyBytes_AS_STRING(reply) + head_len, body, body_len);
    PyObject *slipped = PyObject_CallOneArg(g->slip_fn, reply);
    Py_DECREF(reply);
    if (slipped == NULL)
        return -1;
    if (PyBytes_Check(slipped)) {
        if (send_reply(fd, PyBytes_AS_STRING(slipped), (size_t)PyBytes_GET_SIZE(slipped), NULL,
                       0, src, src_len))
            counts->answered++;
        else
            counts->dropped++;
    }
    Py_DECREF(slipped);
    return 0;
}

/* Send the answer head+body to pkt's source, unless g (or NULL) limits it:
 * then it is dropped or, for a slip, truncated by g's slip_fn. A datagram
 * ending in g's heavy suffix is charged the heavy cost. 0, or -1 with an
 * exception set (only from slip_fn). */
static int
send_answer(Guard *g, const char *pkt, Py_ssize_t n, int fd, const char *head, size_t head_len,
            const char *body, size_t body_len, const struct sockaddr_storage *src,
            socklen_t src_len, Counts *counts)
{
    int verdict = SEND;
    if (g != NULL && g->interval) {
        const uint8_t *addr;
        unsigned port;
        size_t len = source_bytes(src, &addr, &port);
        int heavy = g->heavy_len && n >= g->heavy_len &&
                    memcmp(pkt + n - g->heavy_len, g->heavy, (size_t)g->heavy_len) == 0;
        if (len)
            verdict = guard_admit(g, addr, len, now_ns(), heavy);
    }
    if (verdict == DROP)
        return 0;
    if (verdict == SLIP)
        return send_slip(g, fd, head, head_len, body, body_len, src, src_len, counts);
    if (send_reply(fd, head, head_len, body, body_len, src, src_len))
        counts->answered++;
    else
        counts->dropped++;
    return 0;
}

/* A repeat-table hit: 1 when answered (or limited), 0 on a miss, -1 with an
 * exception set. */
static int
answer_repeat(PyObject *repeats, Guard *g, const char *pkt, Py_ssize_t n, int fd,
              const struct sockaddr_storage *src, socklen_t src_len, Counts *counts)
{
    PyObject *key = PyBytes_FromStringAndSize(pkt + ID_SIZE, n - ID_SIZE);
    if (key == NULL)
        return -1;
    /* stored is borrowed from the dict. That is enough: it is used only
     * before any Python code runs again (the send is a system call; a slip
     * copies it before calling Python), so nothing can take it out of the
     * dict while it is in use. */
    PyObject *stored = PyDict_GetItemWithError(repeats, key);
    Py_DECREF(key);
    if (stored == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyBytes_Check(stored))
        return 0; /* not ours to interpret: let the handler answer */
    int64_t before = counts->answered;
    int rc = send_answer(g, pkt, n, fd, pkt, ID_SIZE, PyBytes_AS_STRING(stored),
                         (size_t)PyBytes_GET_SIZE(stored), src, src_len, counts);
    counts->repeated += counts->answered - before;
    return rc < 0 ? -1 : 1;
}

/* The exception being raised, with its traceback attached; the error indicator is cleared. */
static PyObject *
take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL)
        PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
#endif
}

/* Append item to *list, creating the list on first use; 0, or -1 with an exception set. */
static int
append(PyObject **list, PyObject *item)
{
    if (*list == NULL && (*list = PyList_New(0)) == NULL)
        return -1;
    return PyList_Append(*list, item);
}

/* Append (datagram, the exception being raised) to *failures: the handler's
 * failure, for Python to log. 0, or -1 with another exception set. */
static int
record_failure(PyObject **failures, PyObject *data)
{
    PyObject *value = take_exception();
    PyObject *pair = PyTuple_Pack(2, data, value ? value : Py_None);
    Py_XDECREF(value);
    if (pair == NULL)
        return -1;
    int rc = append(failures, pair);
    Py_DECREF(pair);
    return rc;
}

/* The datagram being handled is lost to the exception being raised: keep
 * the exception in *errors for Python to log, or, if even that fails, let
 * it go (the datagram is counted all the same). Clears the error indicator. */
static void
keep_error(PyObject **errors)
{
    PyObject *value = take_exception();
    if (value == NULL || append(errors, value) < 0)
        PyErr_Clear();
    Py_XDECREF(value);
}

/* Miss: the Python handler decides. Returns 0, or -1 with an exception set
 * when the datagram is lost before the handler's answer could be known. */
static int
answer_with_handler(PyObject *handler, Guard *g, const char *pkt, Py_ssize_t n, int fd,
                    const struct sockaddr_storage *src, socklen_t src_len, Counts *counts,
                    PyObject **failures)
{
    PyObject *data = PyBytes_FromStringAndSize(pkt, n);
    if (data == NULL)
        return -1;
    PyObject *source = source_tuple(src, src_len);
    if (source == NULL) {
        Py_DECREF(data);
        return -1;
    }
    PyObject *argv[2] = {data, source};
    PyObject *reply = PyObject_Vectorcall(handler, argv, 2, NULL);
    Py_DECREF(source);
    int rc = 0;
    if (reply == NULL) {
        rc = record_failure(failures, data);
    } else if (PyBytes_Check(reply)) {
        rc = send_answer(g, pkt, n, fd, PyBytes_AS_STRING(reply),
                         (size_t)PyBytes_GET_SIZE(reply), NULL, 0, src, src_len, counts);
    } else if (reply != Py_None) {
        PyErr_Format(PyExc_TypeError, "handler returned %.80s, not bytes or None",
                     Py_TYPE(reply)->tp_name);
        rc = record_failure(failures, data);
    }
    Py_XDECREF(reply);
    Py_DECREF(data);
    return rc;
}

PyDoc_STRVAR(drain_doc,
"drain(fd, repeats, handler, limit, counts, guard=None) -> (failures, errors)\n\n"
"Receive up to ``limit`` datagrams from the non-blocking socket ``fd``, stopping\n"
"early when it is empty or reports an error. Each one is answered from\n"
"``repeats`` (a dict of datagram[2:] -> reply[2:], or None) when it holds the\n"
"datagram, else by ``handler(data, source) -> bytes | None``.\n\n"
"``counts`` is a writable buffer of five int64 (array('q', [0] * 5)), filled\n"
"before drain returns or raises: received, answered, dropped, the errno\n"
"of the receive error that ended the loop (0 if none; EAGAIN is none), and\n"
"how many of the answered were sent from ``repeats`` (Python never ran).\n"
"``failures`` is None or a list of (datagram, exception) for each call of\n"
"``handler`` that raised or returned something other than bytes or None.\n"
"``errors`` is None or a list of the exceptions that lost a datagram here\n"
"(its source address, memory), each datagram counted as dropped.\n"
"``guard``: a Guard; a datagram from a source it rejects is dropped unread,\n"
"and every answer, repeat or handler's, goes through its rate limiter.");

static PyObject *
drain(PyObject *module, PyObject *args)
{
    (void)module;
    int fd;
    PyObject *repeats, *handler, *guard = Py_None;
    long limit;
    Py_buffer out;
    if (!PyArg_ParseTuple(args, "iOOlw*|O:drain", &fd, &repeats, &handler, &limit, &out, &guard))
        return NULL;
    const char *invalid = NULL;
    if (guard != Py_None && !PyObject_TypeCheck(guard, &GuardType))
        invalid = "guard must be a Guard or None";
    else if (repeats != Py_None && !PyDict_CheckExact(repeats))
        invalid = "repeats must be a dict or None";
    else if (!PyCallable_Check(handler))
        invalid = "handler must be callable";
    else if (out.len != (Py_ssize_t)sizeof(Counts))
        invalid = "counts must be a writable buffer of five int64";
    if (invalid != NULL) {
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_TypeError, invalid);
        return NULL;
    }
    /* repeats is borrowed from the argument tuple, which holds it until we
     * return: a handler that clears the dict (remember() does when it is
     * full) or drops its own reference to it cannot free it under us. */
    if (repeats == Py_None)
        repeats = NULL;
    Guard *g = guard == Py_None ? NULL : (Guard *)guard; /* borrowed likewise */
    /* 64 KiB on the stack, which is fine: drain runs on the event loop's
     * thread, in the daemon its main thread, whose stack is megabytes. Not
     * static: Python code run from here (the handler, a key's __eq__) may let
     * another thread's loop call drain while this call still needs pkt. */
    char pkt[MAX_DATAGRAM];
    Counts counts = {0};
    PyObject *failures = NULL, *errors = NULL;
    while (counts.received < limit) {
        struct sockaddr_storage src;
        socklen_t src_len = sizeof src;
        ssize_t n = recvfrom(fd, pkt, sizeof pkt, MSG_DONTWAIT, (struct sockaddr *)&src,
                             &src_len);
        if (n < 0) {
            if (errno == EINTR)
                continue; /* a signal: its Python handler runs once we return */
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                counts.recv_errno = errno; /* e.g. an ICMP error: Python logs it */
            break;
        }
        counts.received++;
        const uint8_t *addr;
        unsigned port;
        size_t addr_len = g == NULL ? 0 : source_bytes(&src, &addr, &port);
        if (addr_len && guard_rejects(g, addr, addr_len, port))
            continue; /* a reflection source: not even parsed (counted by g) */
        int hit = 0, rc = 0;
        if (repeats != NULL && n > ID_SIZE)
            hit = answer_repeat(repeats, g, pkt, n, fd, &src, src_len, &counts);
        if (hit == 0)
            rc = answer_with_handler(handler, g, pkt, n, fd, &src, src_len, &counts, &failures);
        if (hit < 0 || rc < 0) { /* this datagram is lost, not the others */
            counts.dropped++;
            keep_error(&errors);
        }
    }
    memcpy(out.buf, &counts, sizeof counts);
    PyBuffer_Release(&out);
    PyObject *result = Py_BuildValue("(OO)", failures ? failures : Py_None,
                                     errors ? errors : Py_None);
    Py_XDECREF(failures);
    Py_XDECREF(errors);
    return result;
}

static PyMethodDef methods[] = {
    {"drain", drain, METH_VARARGS, drain_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "responder.net._udploop",
    .m_doc = "The UDP drain loop of responder.net.udp, compiled (see responder/net/udp.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__udploop(void)
{
    if (PyType_Ready(&GuardType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Guard", (PyObject *)&GuardType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
