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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define MAX_DATAGRAM 65535
#define ID_SIZE 2

/* The source address as Python's socket module gives it: (host, port) for
 * IPv4, (host, port, flowinfo, scope_id) for IPv6. */
static PyObject *
source_tuple(const struct sockaddr_storage *addr, socklen_t len)
{
    char host[NI_MAXHOST];
    if (getnameinfo((const struct sockaddr *)addr, len, host, sizeof host, NULL, 0,
                    NI_NUMERICHOST) != 0) {
        PyErr_SetString(PyExc_OSError, "unprintable source address");
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

/* Append (datagram, exception) to *failures, creating the list on first use. */
static int
record_failure(PyObject **failures, PyObject *data)
{
    PyObject *value = take_exception();
    if (*failures == NULL && (*failures = PyList_New(0)) == NULL) {
        Py_XDECREF(value);
        return -1;
    }
    PyObject *pair = PyTuple_Pack(2, data, value ? value : Py_None);
    Py_XDECREF(value);
    if (pair == NULL)
        return -1;
    int rc = PyList_Append(*failures, pair);
    Py_DECREF(pair);
    return rc;
}

/* Miss: the Python handler decides. Returns 0, or -1 with an exception set. */
static int
answer_with_handler(PyObject *handler, const char *pkt, Py_ssize_t n, int fd,
                    const struct sockaddr_storage *src, socklen_t src_len,
                    long *answered, long *dropped, PyObject **failures)
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
            ++*answered;
        else
            ++*dropped;
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
"drain(fd, repeats, handler, limit) -> (received, answered, dropped, failures)\n\n"
"Receive up to ``limit`` datagrams from the non-blocking socket ``fd``, stopping\n"
"early when it is empty or reports an error. Each one is answered from\n"
"``repeats`` (a dict of datagram[2:] -> reply[2:], or None) when it holds the\n"
"datagram, else by ``handler(data, source) -> bytes | None``. ``failures`` is None\n"
"or a list of (datagram, exception) for each call of ``handler`` that raised or\n"
"returned something other than bytes or None.");

static PyObject *
drain(PyObject *module, PyObject *args)
{
    (void)module;
    int fd;
    PyObject *repeats, *handler;
    long limit;
    if (!PyArg_ParseTuple(args, "iOOl:drain", &fd, &repeats, &handler, &limit))
        return NULL;
    /* repeats is borrowed from the argument tuple, which holds it until we
     * return: a handler that clears the dict (remember() does when it is
     * full) or drops its own reference to it cannot free it under us. */
    if (repeats == Py_None) {
        repeats = NULL;
    } else if (!PyDict_CheckExact(repeats)) {
        PyErr_SetString(PyExc_TypeError, "repeats must be a dict or None");
        return NULL;
    }
    if (!PyCallable_Check(handler)) {
        PyErr_SetString(PyExc_TypeError, "handler must be callable");
        return NULL;
    }
    /* 64 KiB on the stack, which is fine: drain runs on the event loop's
     * thread, in the daemon its main thread, whose stack is megabytes. Not
     * static: Python code run from here (the handler, a key's __eq__) may let
     * another thread's loop call drain while this call still needs pkt. */
    char pkt[MAX_DATAGRAM];
    long received = 0, answered = 0, dropped = 0;
    PyObject *failures = NULL;
    while (received < limit) {
        struct sockaddr_storage src;
        socklen_t src_len = sizeof src;
        ssize_t n = recvfrom(fd, pkt, sizeof pkt, MSG_DONTWAIT, (struct sockaddr *)&src,
                             &src_len);
        if (n < 0)
            break; /* empty (EAGAIN), interrupted, or an ICMP error: back to the loop */
        received++;
        int sent = 0, hit = 0;
        if (repeats != NULL && n > ID_SIZE) {
            hit = answer_repeat(repeats, pkt, n, fd, &src, src_len, &sent);
            if (hit < 0)
                goto fail;
        }
        if (hit) {
            if (sent)
                answered++;
            else
                dropped++;
        } else if (answer_with_handler(handler, pkt, n, fd, &src, src_len, &answered,
                                       &dropped, &failures) < 0) {
            goto fail;
        }
    }
    PyObject *result = Py_BuildValue("(lllO)", received, answered, dropped,
                                     failures ? failures : Py_None);
    Py_XDECREF(failures);
    return result;
fail:
    Py_XDECREF(failures);
    return NULL;
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
