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

#define MAX_DATAGRAM 65535
#define ID_SIZE 2

/* What one drain call counts, in the layout of the caller's buffer. */
typedef struct {
    int64_t received;   /* datagrams taken from the socket */
    int64_t answered;   /* replies sent */
    int64_t dropped;    /* replies the kernel refused, and datagrams lost to an error here */
    int64_t recv_errno; /* the receive error that ended the loop (never EAGAIN), or 0 */
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

/* A repeat-table hit: 1 and *sent set, 0 on a miss, -1 with an exception set. */
static int
answer_repeat(PyObject *repeats, const char *pkt, Py_ssize_t n, int fd,
              const struct sockaddr_storage *src, socklen_t src_len, int *sent)
{
    PyObject *key = PyBytes_FromStringAndSize(pkt + ID_SIZE, n - ID_SIZE);
    if (key == NULL)
        return -1;
    /* stored is borrowed from the dict. That is enough: it is used only
     * before any Python code runs again (the send is a system call), so
     * nothing can take it out of the dict while it is in use. */
    PyObject *stored = PyDict_GetItemWithError(repeats, key);
    Py_DECREF(key);
    if (stored == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyBytes_Check(stored))
        return 0; /* not ours to interpret: let the handler answer */
    *sent = send_reply(fd, pkt, ID_SIZE, PyBytes_AS_STRING(stored),
                       (size_t)PyBytes_GET_SIZE(stored), src, src_len);
    return 1;
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
answer_with_handler(PyObject *handler, const char *pkt, Py_ssize_t n, int fd,
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
        if (send_reply(fd, PyBytes_AS_STRING(reply), (size_t)PyBytes_GET_SIZE(reply), NULL, 0,
                       src, src_len))
            counts->answered++;
        else
            counts->dropped++;
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
"drain(fd, repeats, handler, limit, counts) -> (failures, errors)\n\n"
"Receive up to ``limit`` datagrams from the non-blocking socket ``fd``, stopping\n"
"early when it is empty or reports an error. Each one is answered from\n"
"``repeats`` (a dict of datagram[2:] -> reply[2:], or None) when it holds the\n"
"datagram, else by ``handler(data, source) -> bytes | None``.\n\n"
"``counts`` is a writable buffer of four int64 (array('q', [0] * 4)), filled\n"
"before drain returns or raises: received, answered, dropped, and the errno\n"
"of the receive error that ended the loop (0 if none; EAGAIN is none).\n"
"``failures`` is None or a list of (datagram, exception) for each call of\n"
"``handler`` that raised or returned something other than bytes or None.\n"
"``errors`` is None or a list of the exceptions that lost a datagram here\n"
"(its source address, memory), each datagram counted as dropped.");

static PyObject *
drain(PyObject *module, PyObject *args)
{
    (void)module;
    int fd;
    PyObject *repeats, *handler;
    long limit;
    Py_buffer out;
    if (!PyArg_ParseTuple(args, "iOOlw*:drain", &fd, &repeats, &handler, &limit, &out))
        return NULL;
    const char *invalid = NULL;
    if (repeats != Py_None && !PyDict_CheckExact(repeats))
        invalid = "repeats must be a dict or None";
    else if (!PyCallable_Check(handler))
        invalid = "handler must be callable";
    else if (out.len != (Py_ssize_t)sizeof(Counts))
        invalid = "counts must be a writable buffer of four int64";
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
        int hit = 0, sent = 0, rc = 0;
        if (repeats != NULL && n > ID_SIZE)
            hit = answer_repeat(repeats, pkt, n, fd, &src, src_len, &sent);
        if (hit > 0) {
            if (sent)
                counts.answered++;
            else
                counts.dropped++;
        } else if (hit == 0) {
            rc = answer_with_handler(handler, pkt, n, fd, &src, src_len, &counts, &failures);
        }
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
    return PyModule_Create(&module);
}
