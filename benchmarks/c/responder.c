/*
 * Minimal template responder: the practical limit of one CPU on this host.
 *
 * A blocking recvfrom/sendto loop on one UDP socket.  Each datagram is keyed
 * by its question section (lower-cased) plus one byte telling whether the
 * query carries additional records (an EDNS OPT); the key selects a
 * precomputed reply.  The reply gets the query's ID and RD bit and, in DNS
 * mode, the query's question bytes (so the letter case is echoed).  Anything
 * that does not match a template is dropped.
 *
 * Template file: repeated records of
 *   u16 key_len, key bytes, u16 reply_len, reply bytes   (big-endian lengths)
 *
 * Usage: responder -a ADDR -p PORT -m dns|nbns -t TEMPLATE_FILE
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PACKET 1500
#define MAX_KEY 300

struct template {
    uint8_t *key;
    size_t key_len;
    uint8_t *reply;
    size_t reply_len;
};

static struct template *table;
static size_t table_mask;

static uint64_t fnv1a(const uint8_t *data, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void table_insert(struct template t)
{
    size_t i = fnv1a(t.key, t.key_len) & table_mask;
    while (table[i].key != NULL)
        i = (i + 1) & table_mask;
    table[i] = t;
}

static const struct template *table_find(const uint8_t *key, size_t len)
{
    size_t i = fnv1a(key, len) & table_mask;
    while (table[i].key != NULL) {
        if (table[i].key_len == len && memcmp(table[i].key, key, len) == 0)
            return &table[i];
        i = (i + 1) & table_mask;
    }
    return NULL;
}

static int read_blob(FILE *f, uint8_t **out, size_t *len)
{
    uint8_t hdr[2];
    if (fread(hdr, 1, 2, f) != 2)
        return 0;
    *len = ((size_t)hdr[0] << 8) | hdr[1];
    *out = malloc(*len ? *len : 1);
    if (*out == NULL || fread(*out, 1, *len, f) != *len)
        return -1;
    return 1;
}

static void load_templates(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    size_t count = 0, cap = 16;
    struct template *items = malloc(cap * sizeof *items);
    for (;;) {
        struct template t;
        int rc = read_blob(f, &t.key, &t.key_len);
        if (rc == 0)
            break;
        if (rc < 0 || read_blob(f, &t.reply, &t.reply_len) != 1) {
            fprintf(stderr, "%s: truncated template file\n", path);
            exit(2);
        }
        if (count == cap)
            items = realloc(items, (cap *= 2) * sizeof *items);
        items[count++] = t;
    }
    fclose(f);
    size_t size = 16;
    while (size < 2 * count)
        size *= 2;
    table = calloc(size, sizeof *table);
    table_mask = size - 1;
    for (size_t i = 0; i < count; i++)
        table_insert(items[i]);
    free(items);
}

/* Length of the question section starting at offset 12, or 0 if malformed. */
static size_t question_len(const uint8_t *pkt, size_t len)
{
    size_t off = 12;
    while (off < len && off < 12 + 255) {
        uint8_t label = pkt[off];
        if (label == 0)
            return off + 5 <= len ? off + 5 - 12 : 0;
        if (label > 63)
            return 0;
        off += 1 + (size_t)label;
    }
    return 0;
}

static int make_key(const uint8_t *pkt, size_t len, uint8_t *key, size_t *key_len)
{
    if (len < 12 || (pkt[2] & 0xF8) != 0 || pkt[4] != 0 || pkt[5] != 1)
        return 0; /* a response, an opcode other than QUERY, or QDCOUNT != 1 */
    size_t qlen = question_len(pkt, len);
    if (qlen == 0 || qlen + 1 > MAX_KEY)
        return 0;
    for (size_t i = 0; i < qlen; i++) {
        uint8_t c = pkt[12 + i];
        key[i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
    }
    key[qlen] = (pkt[10] | pkt[11]) ? 1 : 0;
    *key_len = qlen + 1;
    return 1;
}

static int open_socket(const char *addr, int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    /* Beside a server that holds the port on the wildcard address with
     * SO_REUSEADDR (nmbd does), a specific address binds only with it too. */
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0 || inet_pton(AF_INET, addr, &sin.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        perror("bind");
        exit(2);
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *mode = "dns", *path = NULL;
    int port = 53, opt;
    while ((opt = getopt(argc, argv, "a:p:m:t:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'm': mode = optarg; break;
        case 't': path = optarg; break;
        default: return 2;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "usage: responder -a ADDR -p PORT -m dns|nbns -t FILE\n");
        return 2;
    }
    int copy_question = strcmp(mode, "dns") == 0;
    load_templates(path);
    int fd = open_socket(addr, port);
    uint8_t pkt[MAX_PACKET], out[MAX_PACKET], key[MAX_KEY];
    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        ssize_t n = recvfrom(fd, pkt, sizeof pkt, 0, (struct sockaddr *)&peer, &plen);
        size_t key_len;
        if (n <= 0 || !make_key(pkt, (size_t)n, key, &key_len))
            continue;
        const struct template *t = table_find(key, key_len);
        if (t == NULL || t->reply_len > sizeof out)
            continue;
        memcpy(out, t->reply, t->reply_len);
        out[0] = pkt[0];
        out[1] = pkt[1];
        out[2] = (uint8_t)((out[2] & 0xFE) | (pkt[2] & 0x01));
        if (copy_question && t->reply_len >= 12 + key_len - 1)
            memcpy(out + 12, pkt + 12, key_len - 1);
        sendto(fd, out, t->reply_len, 0, (struct sockaddr *)&peer, plen);
    }
}
