/*
 * pyFMS fan-out load generator: N RTMP players (or HTTP-FLV viewers) in one process, one epoll
 * loop.
 *
 * Written for benchmarks/fanout.py, which compiles it with `gcc -O2` and drives it through
 * stdin/stdout. Each player does what a real player (FFmpeg) does: simple handshake, connect,
 * createStream (waits for its _result and uses the stream id it carries), play, Set Buffer
 * Length; it honours the server's Set Chunk Size, acknowledges every half Window Acknowledgement
 * Size (as FFmpeg does) and answers PingRequest. It reassembles audio and video messages from the
 * chunk stream (fmt 0-3 headers, extended timestamps) keeping only their first bytes, where the
 * benchmark publisher put a marker, a sequence number and the CLOCK_MONOTONIC time it was sent.
 *
 * With --mode http-flv each player is an HTTP-FLV viewer instead: GET /APP/STREAM.flv (HTTP/1.1,
 * or --http-version 1.0), a 200 response is "playing" (as Play.Start is for RTMP), then the body
 * is decoded (chunked, or delimited by the end of the connection): the 9-byte FLV header, then
 * tags (previous tag size, 11-byte tag header, body). A tag's body is the RTMP message's payload,
 * so the marker is read at the same offsets and latency and counts mean the same in both modes.
 *
 * Protocol with the driver:
 *   stdout  "READY <playing> <failed> <first_connect_ns> <last_play_start_ns>" once every player
 *           is playing or has failed its setup (--setup-timeout per player; past --setup-budget
 *           seconds nothing new starts and every setup still running fails); "SETUP ..."
 *           progress lines until then; "DONE" after the summary was written.
 *   stdin   "W <t0_ns> <t1_ns>": count and time the messages sent in [t0, t1);
 *           "Q": write the JSON summary to --out and exit.
 * The process also exits on its own after --max-seconds (with its summary), so a lost driver
 * never leaves load running.
 *
 * Build: gcc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HS_SIZE 1536
#define PREFIX 48          /* bytes kept of each media message */
#define CMD_MAX 2048       /* bytes kept of each command message during setup */
#define MAX_CS 12          /* chunk streams tracked per player */
#define READ_BUF (256 * 1024)
#define FINE_US 100        /* latency histogram: 100 us buckets up to 2 s, */
#define FINE_BUCKETS 20000
#define COARSE_US 10000    /* then 10 ms buckets up to 120 s; beyond goes to the overflow count */
#define LAT_BUCKETS (FINE_BUCKETS + 11800)
#define MAGIC "FMSB"

enum state { S_CONNECTING, S_HANDSHAKE, S_CONNECT, S_CREATE, S_PLAY, S_PLAYING, S_FAILED,
             S_CLOSED, S_HTTP_HEAD };
enum chunk_state { CH_SIZE, CH_EXT, CH_DATA, CH_CRLF };  /* HTTP/1.1 chunked body decoding */
#define FLV_FILE_HEADER 9
#define FLV_TAG_HEAD 15    /* previous tag size (4) + tag header (11) */

struct chunk_stream {
    uint32_t csid;
    uint32_t timestamp, delta, length, stream_id, got;
    uint8_t type, ext, in_progress;
    uint8_t prefix[PREFIX];
};

struct setup {            /* only while a player is being set up */
    uint8_t hs[1 + 2 * HS_SIZE];
    uint32_t hs_got;
    uint8_t cmd[CMD_MAX];
    uint32_t cmd_len;
};

struct player {
    int fd;
    uint8_t state, hdr_got, closed_by_server;
    uint8_t hdr[18];
    int8_t cur;           /* chunk stream being read, -1 while reading a header */
    uint32_t chunk_left, in_chunk_size, window;
    uint32_t stream_id;
    uint64_t bytes_in, last_ack;
    uint64_t started_ns, playing_ns;
    uint64_t last_seq;
    uint32_t window_received, media_received;
    uint8_t have_seq;
    uint8_t chunked, ch_state; /* HTTP-FLV: the body is chunked; where the chunk decoder is */
    uint32_t ch_left;          /* HTTP-FLV: chunk size being read, data left, or CRLF left */
    uint32_t flv_skip;         /* HTTP-FLV: bytes of the FLV file header still to skip */
    struct setup *setup;
    uint8_t *out;         /* bytes the socket did not take yet */
    uint32_t out_len, out_cap;
    struct chunk_stream cs[MAX_CS];
};

static struct player *players;
static int n_players, concurrency = 100, ack_divisor = 2;
static int next_player, in_setup, n_playing, n_failed, n_disconnected, ready_sent;
static double setup_timeout = 30.0, setup_budget = 120.0, max_seconds = 600.0;
static struct sockaddr_in server, source;
static int bind_source;            /* --source: connect from this local address */
static double arrival_rate;        /* --rate: new players per second (0: as fast as allowed) */
static const char *app = "live", *stream_name = "bench", *out_path = "loadgen.json";
static char tc_url[256];
static uint64_t t0_ns = UINT64_MAX, t1_ns = UINT64_MAX, first_connect_ns, last_playing_ns;
static uint64_t lat_hist[LAT_BUCKETS], lat_overflow, lat_count, lat_max_ns, lat_min_ns = UINT64_MAX;
static uint64_t duplicates, broken_messages, connect_errors, refused_setups, timed_out_setups;
static uint64_t never_started;
static uint64_t bytes_total, media_total;
static int epfd;
static uint8_t c1[HS_SIZE];
static int http_mode;              /* --mode http-flv */
static const char *http_version = "1.1";
static char http_request[1024];

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | p[1] << 8 | p[2]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | be24(p + 1); }
static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }
static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

/* ------------------------------------------------------------------------------ AMF0 out */

static size_t amf_string(uint8_t *p, const char *s) {
    size_t n = strlen(s);
    p[0] = 0x02; p[1] = n >> 8; p[2] = n;
    memcpy(p + 3, s, n);
    return 3 + n;
}

static size_t amf_number(uint8_t *p, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    p[0] = 0x00;
    for (int i = 0; i < 8; i++) p[1 + i] = bits >> (56 - 8 * i);
    return 9;
}

static size_t amf_key(uint8_t *p, const char *k) {
    size_t n = strlen(k);
    p[0] = n >> 8; p[1] = n;
    memcpy(p + 2, k, n);
    return 2 + n;
}

/* One message in chunks of 4096 bytes (we announce that size first), fmt 0 then fmt 3. */
static size_t chunk_message(uint8_t *out, uint32_t csid, uint8_t type, uint32_t sid,
                            const uint8_t *payload, uint32_t len) {
    size_t o = 0;
    uint32_t sent = 0;
    out[o++] = csid;
    out[o++] = 0; out[o++] = 0; out[o++] = 0;  /* timestamp 0 */
    out[o++] = len >> 16; out[o++] = len >> 8; out[o++] = len;
    out[o++] = type;
    out[o++] = sid; out[o++] = sid >> 8; out[o++] = sid >> 16; out[o++] = sid >> 24;
    for (;;) {
        uint32_t n = len - sent < 4096 ? len - sent : 4096;
        memcpy(out + o, payload + sent, n);
        o += n; sent += n;
        if (sent >= len) return o;
        out[o++] = 0xC0 | csid;
    }
}

/* ---------------------------------------------------------------------------- sockets */

static void watch(struct player *p, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(p - players)};
    epoll_ctl(epfd, op, p->fd, &ev);
}

static void end_setup(struct player *p) {
    free(p->setup);
    p->setup = NULL;
    in_setup--;
}

static void close_player(struct player *p, uint8_t state) {
    if (p->fd >= 0) {
        struct linger lg = {1, 0}; /* reset: no TIME_WAIT left behind on our side */
        setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(p->fd);
        p->fd = -1;
    }
    if (p->setup) end_setup(p);
    free(p->out);
    p->out = NULL;
    p->out_len = p->out_cap = 0;
    if (state == S_FAILED) n_failed++;
    if (p->state == S_PLAYING) n_playing--;
    p->state = state;
}

static void send_bytes(struct player *p, const uint8_t *data, size_t len) {
    if (p->fd < 0) return;
    if (p->out_len == 0) {
        ssize_t n = send(p->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) return; /* the read side sees it */
            n = 0;
        }
        data += n;
        len -= (size_t)n;
        if (len == 0) return;
    }
    if (p->out_len + len > p->out_cap) {
        p->out_cap = (uint32_t)(p->out_len + len) * 2;
        p->out = realloc(p->out, p->out_cap);
    }
    memcpy(p->out + p->out_len, data, len);
    p->out_len += (uint32_t)len;
    watch(p, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
}

static void flush_out(struct player *p) {
    while (p->out_len) {
        ssize_t n = send(p->fd, p->out, p->out_len, MSG_NOSIGNAL);
        if (n <= 0) return;
        memmove(p->out, p->out + n, p->out_len - (size_t)n);
        p->out_len -= (uint32_t)n;
    }
    watch(p, EPOLLIN, EPOLL_CTL_MOD);
}

static void start_player(struct player *p, uint64_t now) {
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    p->started_ns = now;
    if (!first_connect_ns) first_connect_ns = now;
    in_setup++;
    p->setup = calloc(1, sizeof *p->setup);
    p->in_chunk_size = 128;
    p->cur = -1;
    if (p->fd < 0) {
        connect_errors++;
        close_player(p, S_FAILED);
        return;
    }
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind_source) {
        /* the port is picked at connect(), per destination: no ephemeral-port shortage */
        setsockopt(p->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(p->fd, (struct sockaddr *)&source, sizeof source) < 0) {
            connect_errors++;
            close_player(p, S_FAILED);
            return;
        }
    }
    if (connect(p->fd, (struct sockaddr *)&server, sizeof server) < 0 && errno != EINPROGRESS) {
        connect_errors++;
        close_player(p, S_FAILED);
        return;
    }
    p->state = S_CONNECTING;
    watch(p, EPOLLOUT, EPOLL_CTL_ADD);
}

/* ------------------------------------------------------------------------- setup steps */

static void send_connect(struct player *p) {
    uint8_t payload[1024], out[1400];
    size_t n = 0, o = 0;
    n += amf_string(payload + n, "connect");
    n += amf_number(payload + n, 1.0);
    payload[n++] = 0x03;
    n += amf_key(payload + n, "app");
    n += amf_string(payload + n, app);
    n += amf_key(payload + n, "flashVer");
    n += amf_string(payload + n, "LNX 9,0,124,2");
    n += amf_key(payload + n, "tcUrl");
    n += amf_string(payload + n, tc_url);
    n += amf_key(payload + n, "fpad");
    payload[n++] = 0x01; payload[n++] = 0x00;
    n += amf_key(payload + n, "capabilities");
    n += amf_number(payload + n, 15.0);
    n += amf_key(payload + n, "audioCodecs");
    n += amf_number(payload + n, 4071.0);
    n += amf_key(payload + n, "videoCodecs");
    n += amf_number(payload + n, 252.0);
    n += amf_key(payload + n, "videoFunction");
    n += amf_number(payload + n, 1.0);
    payload[n++] = 0; payload[n++] = 0; payload[n++] = 0x09;
    uint8_t size[4];
    put_be32(size, 4096);
    o += chunk_message(out + o, 2, 1, 0, size, 4);
    o += chunk_message(out + o, 3, 20, 0, payload, (uint32_t)n);
    send_bytes(p, out, o);
    p->state = S_CONNECT;
}

static void send_create_stream(struct player *p) {
    uint8_t payload[64], out[128];
    size_t n = 0;
    n += amf_string(payload + n, "createStream");
    n += amf_number(payload + n, 2.0);
    payload[n++] = 0x05;
    send_bytes(p, out, chunk_message(out, 3, 20, 0, payload, (uint32_t)n));
    p->state = S_CREATE;
}

static void send_play(struct player *p) {
    uint8_t payload[512], out[640], control[10];
    size_t n = 0, o;
    n += amf_string(payload + n, "play");
    n += amf_number(payload + n, 3.0);
    payload[n++] = 0x05;
    n += amf_string(payload + n, stream_name);
    n += amf_number(payload + n, -2000.0);
    o = chunk_message(out, 8, 20, p->stream_id, payload, (uint32_t)n);
    control[0] = 0; control[1] = 3; /* SetBufferLength: stream id, 3000 ms */
    put_be32(control + 2, p->stream_id);
    put_be32(control + 6, 3000);
    o += chunk_message(out + o, 2, 4, 0, control, 10);
    send_bytes(p, out, o);
    p->state = S_PLAY;
}

static void fail_setup(struct player *p) {
    refused_setups++;
    close_player(p, S_FAILED);
}

/* A command message during setup: _result/_error of ours, or onStatus. */
static void on_command(struct player *p, const uint8_t *m, uint32_t len, uint64_t now) {
    if (len < 3 || m[0] != 0x02) return;
    uint32_t name_len = (uint32_t)m[1] << 8 | m[2];
    if (3 + name_len > len) return;
    const char *name = (const char *)m + 3;
    uint32_t at = 3 + name_len;
    int result = name_len == 7 && !memcmp(name, "_result", 7);
    int error = name_len == 6 && !memcmp(name, "_error", 6);
    if ((result || error) && at + 9 <= len && m[at] == 0x00) {
        uint64_t bits = be64(m + at + 1);
        double tid;
        memcpy(&tid, &bits, 8);
        at += 9;
        if (tid == 1.0 && p->state == S_CONNECT) {
            if (error) fail_setup(p); else send_create_stream(p);
        } else if (tid == 2.0 && p->state == S_CREATE) {
            if (error) { fail_setup(p); return; }
            if (at < len && m[at] == 0x05) at++;
            p->stream_id = 1;
            if (at + 9 <= len && m[at] == 0x00) {
                bits = be64(m + at + 1);
                memcpy(&tid, &bits, 8);
                if (tid >= 1.0 && tid < 4294967296.0) p->stream_id = (uint32_t)tid;
            }
            send_play(p);
        }
        return;
    }
    if (name_len == 8 && !memcmp(name, "onStatus", 8) && p->state == S_PLAY) {
        if (memmem(m, len, "NetStream.Play.Start", 20)) {
            p->state = S_PLAYING;
            p->playing_ns = now;
            last_playing_ns = now;
            n_playing++;
            end_setup(p);
        } else if (memmem(m, len, "\x05level\x02\x00\x05" "error", 14)) {
            fail_setup(p);
        }
    }
}

/* ------------------------------------------------------------------------ chunk stream */

static void send_control(struct player *p, uint8_t type, const uint8_t *body, uint32_t len) {
    uint8_t out[32];
    send_bytes(p, out, chunk_message(out, 2, type, 0, body, len));
}

static void on_media(struct player *p, struct chunk_stream *c, uint64_t now) {
    uint32_t at = c->type == 8 ? 2 : 10;
    if (c->length < at + 20 || memcmp(c->prefix + at, MAGIC, 4)) return;
    uint64_t seq = be64(c->prefix + at + 4), sent = be64(c->prefix + at + 12);
    p->media_received++;
    media_total++;
    if (p->have_seq && seq <= p->last_seq) duplicates++;
    p->have_seq = 1;
    p->last_seq = seq;
    if (sent < t0_ns || sent >= t1_ns) return;
    p->window_received++;
    uint64_t lat = now > sent ? now - sent : 0;
    uint64_t us = lat / 1000;
    uint64_t bucket = us < FINE_US * FINE_BUCKETS
                          ? us / FINE_US
                          : FINE_BUCKETS + (us - FINE_US * FINE_BUCKETS) / COARSE_US;
    if (bucket < LAT_BUCKETS) lat_hist[bucket]++; else lat_overflow++;
    lat_count++;
    if (lat > lat_max_ns) lat_max_ns = lat;
    if (lat < lat_min_ns) lat_min_ns = lat;
}

static void on_message(struct player *p, struct chunk_stream *c, uint64_t now) {
    const uint8_t *m = c->prefix;
    uint32_t len = c->length;
    switch (c->type) {
    case 1: /* Set Chunk Size */
        if (len >= 4) p->in_chunk_size = be32(m) & 0x7FFFFFFF;
        if (!p->in_chunk_size) p->in_chunk_size = 128;
        break;
    case 4: /* User Control: answer PingRequest */
        if (len >= 6 && m[0] == 0 && m[1] == 6) {
            uint8_t pong[6] = {0, 7, m[2], m[3], m[4], m[5]};
            send_control(p, 4, pong, 6);
        }
        break;
    case 5: /* Window Acknowledgement Size */
        if (len >= 4) p->window = be32(m);
        break;
    case 8:
    case 9:
        on_media(p, c, now);
        break;
    case 17:
    case 20:
        if (p->setup && p->state != S_PLAYING) {
            struct setup *s = p->setup;
            uint32_t skip = c->type == 17 && s->cmd_len ? 1 : 0;
            on_command(p, s->cmd + skip, s->cmd_len - skip, now);
        }
        break;
    default:
        break;
    }
}

static int header_size(struct player *p, int *cs_index) {
    const uint8_t *h = p->hdr;
    int basic = (h[0] & 63) == 0 ? 2 : (h[0] & 63) == 1 ? 3 : 1;
    static const int sizes[4] = {11, 7, 3, 0};
    int fmt = h[0] >> 6, n = basic + sizes[fmt];
    *cs_index = -1;
    if (p->hdr_got < n) return n;
    uint32_t csid = (h[0] & 63) == 0 ? 64u + h[1] : (h[0] & 63) == 1 ? 64u + h[1] + h[2] * 256u
                                                                      : (uint32_t)(h[0] & 63);
    int free_slot = -1;
    for (int i = 0; i < MAX_CS; i++) {
        if (p->cs[i].csid == csid) { *cs_index = i; break; }
        if (!p->cs[i].csid && free_slot < 0) free_slot = i;
    }
    if (*cs_index < 0) {
        if (free_slot < 0) return -1;
        *cs_index = free_slot;
        memset(&p->cs[free_slot], 0, sizeof p->cs[free_slot]);
        p->cs[free_slot].csid = csid;
    }
    if (fmt < 3 ? be24(h + basic) == 0xFFFFFF : p->cs[*cs_index].ext) n += 4;
    return n;
}

static void apply_header(struct player *p, int i) {
    struct chunk_stream *c = &p->cs[i];
    const uint8_t *h = p->hdr;
    int basic = (h[0] & 63) == 0 ? 2 : (h[0] & 63) == 1 ? 3 : 1;
    int fmt = h[0] >> 6;
    const uint8_t *mh = h + basic;
    uint32_t ts = fmt < 3 ? be24(mh) : 0;
    int ext = fmt < 3 ? ts == 0xFFFFFF : c->ext;
    if (ext) ts = be32(h + p->hdr_got - 4);
    if (fmt < 3 && c->in_progress) {
        broken_messages++;
        c->in_progress = 0;
    }
    if (fmt == 0) {
        c->timestamp = ts;
        c->delta = 0;
        c->length = be24(mh + 3);
        c->type = mh[6];
        c->stream_id = (uint32_t)mh[7] | mh[8] << 8 | mh[9] << 16 | (uint32_t)mh[10] << 24;
    } else if (fmt == 1) {
        c->delta = ts;
        c->length = be24(mh + 3);
        c->type = mh[6];
    } else if (fmt == 2) {
        c->delta = ts;
    }
    if (fmt < 3) c->ext = ext;
    if (!c->in_progress) {
        if (fmt != 0) c->timestamp += c->delta;
        c->got = 0;
        c->in_progress = 1;
        if (p->setup && (c->type == 20 || c->type == 17)) p->setup->cmd_len = 0;
    }
    uint32_t left = c->length - c->got;
    p->chunk_left = left < p->in_chunk_size ? left : p->in_chunk_size;
    p->cur = (int8_t)i;
}

static void complete_if_done(struct player *p, struct chunk_stream *c, uint64_t now) {
    if (c->got < c->length) return;
    c->in_progress = 0;
    p->cur = -1;
    on_message(p, c, now);
}

static void parse(struct player *p, const uint8_t *data, size_t len, uint64_t now) {
    while (len && p->fd >= 0) {
        if (p->cur < 0) {
            int i;
            p->hdr[p->hdr_got++] = *data++;
            len--;
            for (;;) {
                int need = header_size(p, &i);
                if (need < 0) { broken_messages++; close_player(p, S_CLOSED); return; }
                if (p->hdr_got < need) {
                    if (!len) return;
                    p->hdr[p->hdr_got++] = *data++;
                    len--;
                    continue;
                }
                break;
            }
            apply_header(p, i);
            p->hdr_got = 0;
            complete_if_done(p, &p->cs[i], now); /* a zero-length message */
            continue;
        }
        struct chunk_stream *c = &p->cs[p->cur];
        size_t n = len < p->chunk_left ? len : p->chunk_left;
        if (c->got < PREFIX) {
            size_t k = PREFIX - c->got < n ? PREFIX - c->got : n;
            memcpy(c->prefix + c->got, data, k);
        }
        if (p->setup && (c->type == 20 || c->type == 17)) {
            struct setup *s = p->setup;
            size_t k = CMD_MAX - s->cmd_len < n ? CMD_MAX - s->cmd_len : n;
            memcpy(s->cmd + s->cmd_len, data, k);
            s->cmd_len += (uint32_t)k;
        }
        c->got += (uint32_t)n;
        p->chunk_left -= (uint32_t)n;
        data += n;
        len -= n;
        if (c->got >= c->length) complete_if_done(p, c, now);
        else if (!p->chunk_left) p->cur = -1;
    }
}

/* ----------------------------------------------------------------------- HTTP-FLV viewers */

/* FLV tags: [previous tag size 4][type 1][size 3][timestamp 3+1][stream id 3][body]. */
static void flv_parse(struct player *p, const uint8_t *data, size_t len, uint64_t now) {
    struct chunk_stream *c = &p->cs[0];
    while (len && p->fd >= 0) {
        if (p->flv_skip) {
            size_t n = len < p->flv_skip ? len : p->flv_skip;
            p->flv_skip -= (uint32_t)n;
            data += n;
            len -= n;
            continue;
        }
        if (p->cur < 0) {
            size_t n = FLV_TAG_HEAD - p->hdr_got < len ? FLV_TAG_HEAD - p->hdr_got : len;
            memcpy(p->hdr + p->hdr_got, data, n);
            p->hdr_got += (uint8_t)n;
            data += n;
            len -= n;
            if (p->hdr_got < FLV_TAG_HEAD) return;
            p->hdr_got = 0;
            c->type = p->hdr[4] & 0x1F;
            c->length = be24(p->hdr + 5);
            c->got = 0;
            p->cur = 0;
        }
        size_t n = c->length - c->got < len ? c->length - c->got : len;
        if (c->got < PREFIX) {
            size_t k = PREFIX - c->got < n ? PREFIX - c->got : n;
            memcpy(c->prefix + c->got, data, k);
        }
        c->got += (uint32_t)n;
        data += n;
        len -= n;
        if (c->got >= c->length) {
            p->cur = -1;
            if (c->type == 8 || c->type == 9) on_media(p, c, now);
        }
    }
}

static int hex_digit(uint8_t ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* The server ended the response (the terminating chunk): the publisher left. */
static void http_ended(struct player *p) {
    n_disconnected++;
    p->closed_by_server = 1;
    close_player(p, S_CLOSED);
}

static void http_body(struct player *p, const uint8_t *data, size_t len, uint64_t now) {
    if (!p->chunked) {
        flv_parse(p, data, len, now);
        return;
    }
    while (len && p->fd >= 0) {
        if (p->ch_state == CH_DATA) {
            size_t n = len < p->ch_left ? len : p->ch_left;
            flv_parse(p, data, n, now);
            data += n;
            len -= n;
            p->ch_left -= (uint32_t)n;
            if (!p->ch_left) { p->ch_state = CH_CRLF; p->ch_left = 2; }
            continue;
        }
        uint8_t ch = *data++;
        len--;
        if (p->ch_state == CH_CRLF) {
            if (!--p->ch_left) p->ch_state = CH_SIZE;
            continue;
        }
        int digit = hex_digit(ch);
        if (p->ch_state == CH_SIZE && digit >= 0) {
            if (p->ch_left > 0x7FFFFFF) { broken_messages++; close_player(p, S_CLOSED); return; }
            p->ch_left = p->ch_left * 16 + (uint32_t)digit;
        } else if (ch == '\n') {
            if (!p->ch_left) { http_ended(p); return; }
            p->ch_state = CH_DATA;
        } else {
            p->ch_state = CH_EXT; /* ';' extensions, '\r': skipped to the line's end */
        }
    }
}

/* The response's status line and headers, gathered in the setup's command buffer. */
static void on_http_head(struct player *p, const uint8_t *data, size_t len, uint64_t now) {
    struct setup *s = p->setup;
    size_t n = CMD_MAX - 1 - s->cmd_len < len ? CMD_MAX - 1 - s->cmd_len : len;
    memcpy(s->cmd + s->cmd_len, data, n);
    s->cmd_len += (uint32_t)n;
    s->cmd[s->cmd_len] = 0;
    char *head = (char *)s->cmd, *end = strstr(head, "\r\n\r\n");
    if (!end) {
        if (s->cmd_len >= CMD_MAX - 1) fail_setup(p);
        return;
    }
    size_t head_len = (size_t)(end + 4 - head), used = head_len - (s->cmd_len - n);
    if (strncmp(head, "HTTP/1.", 7) || strncmp(head + 8, " 200", 4)) {
        fail_setup(p);
        return;
    }
    *end = 0;
    for (char *q = head; *q; q++) *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
    p->chunked = strstr(head, "\r\ntransfer-encoding: chunked") != NULL;
    p->ch_state = CH_SIZE;
    p->ch_left = 0;
    p->flv_skip = FLV_FILE_HEADER;
    p->cur = -1;
    p->hdr_got = 0;
    p->state = S_PLAYING;
    p->playing_ns = now;
    last_playing_ns = now;
    n_playing++;
    end_setup(p);
    if (len > used) http_body(p, data + used, len - used, now);
}

/* ------------------------------------------------------------------------------ events */

static void on_handshake_bytes(struct player *p, const uint8_t *data, size_t len, uint64_t now) {
    struct setup *s = p->setup;
    size_t need = sizeof s->hs - s->hs_got, n = len < need ? len : need;
    memcpy(s->hs + s->hs_got, data, n);
    s->hs_got += (uint32_t)n;
    if (s->hs_got < sizeof s->hs) return;
    send_bytes(p, s->hs + 1, HS_SIZE); /* C2 echoes S1 */
    send_connect(p);
    p->bytes_in = len - n;
    if (len > n) parse(p, data + n, len - n, now);
}

static void on_readable(struct player *p, uint64_t now) {
    static uint8_t buf[READ_BUF];
    for (;;) {
        ssize_t n = recv(p->fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            if (p->state == S_PLAYING) {
                n_disconnected++;
                p->closed_by_server = 1;
                close_player(p, S_CLOSED);
            } else {
                refused_setups++;
                close_player(p, S_FAILED);
            }
            return;
        }
        if (n < 0) return;
        bytes_total += (uint64_t)n;
        if (p->state == S_HANDSHAKE) {
            on_handshake_bytes(p, buf, (size_t)n, now);
        } else if (http_mode) {
            if (p->state == S_HTTP_HEAD) on_http_head(p, buf, (size_t)n, now);
            else http_body(p, buf, (size_t)n, now);
        } else {
            p->bytes_in += (uint64_t)n;
            parse(p, buf, (size_t)n, now);
            if (p->fd >= 0 && p->window && p->bytes_in - p->last_ack >= p->window / ack_divisor) {
                uint8_t ack[4];
                put_be32(ack, (uint32_t)p->bytes_in);
                send_control(p, 3, ack, 4);
                p->last_ack = p->bytes_in;
            }
        }
        if (p->fd < 0 || (size_t)n < sizeof buf) return;
    }
}

static void on_writable(struct player *p) {
    if (p->state != S_CONNECTING) {
        flush_out(p);
        return;
    }
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        connect_errors++;
        close_player(p, S_FAILED);
        return;
    }
    watch(p, EPOLLIN, EPOLL_CTL_MOD);
    if (http_mode) {
        p->state = S_HTTP_HEAD;
        send_bytes(p, (const uint8_t *)http_request, strlen(http_request));
        return;
    }
    p->state = S_HANDSHAKE;
    uint8_t c0c1[1 + HS_SIZE];
    c0c1[0] = 3;
    memcpy(c0c1 + 1, c1, HS_SIZE);
    send_bytes(p, c0c1, sizeof c0c1);
}

/* Past the setup budget nothing new starts and every setup still running fails. */
static void end_setup_phase(void) {
    never_started = (uint64_t)(n_players - next_player);
    n_failed += n_players - next_player;
    next_player = n_players;
    for (int i = 0; i < n_players; i++)
        if (players[i].setup) {
            timed_out_setups++;
            close_player(&players[i], S_FAILED);
        }
}

static void expire_setups(uint64_t now) {
    uint64_t limit = (uint64_t)(setup_timeout * 1e9);
    for (int i = 0; i < next_player; i++) {
        struct player *p = &players[i];
        if (p->setup && p->fd >= 0 && now - p->started_ns > limit) {
            timed_out_setups++;
            close_player(p, S_FAILED);
        }
    }
}

/* ----------------------------------------------------------------------------- summary */

static void write_summary(void) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    FILE *f = fopen(tmp, "w");
    if (!f) { perror(tmp); return; }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(f, "{\"players\": %d, \"started\": %d, \"playing\": %d, \"failed_setup\": %d, "
               "\"disconnected\": %d,\n", n_players, next_player, n_playing, n_failed,
            n_disconnected);
    fprintf(f, "\"connect_errors\": %llu, \"refused_setups\": %llu, \"timed_out_setups\": %llu, "
               "\"never_started\": %llu,\n",
            (unsigned long long)connect_errors, (unsigned long long)refused_setups,
            (unsigned long long)timed_out_setups, (unsigned long long)never_started);
    fprintf(f, "\"first_connect_ns\": %llu, \"last_playing_ns\": %llu,\n",
            (unsigned long long)first_connect_ns, (unsigned long long)last_playing_ns);
    fprintf(f, "\"window_ns\": [%llu, %llu],\n", (unsigned long long)t0_ns,
            (unsigned long long)t1_ns);
    fprintf(f, "\"duplicates\": %llu, \"broken_messages\": %llu, \"bytes\": %llu, "
               "\"media\": %llu,\n", (unsigned long long)duplicates,
            (unsigned long long)broken_messages, (unsigned long long)bytes_total,
            (unsigned long long)media_total);
    fprintf(f, "\"cpu_seconds\": %.3f,\n",
            ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                ru.ru_stime.tv_usec / 1e6);
    fprintf(f, "\"setup_ms\": [");
    for (int i = 0; i < n_players; i++) {
        const struct player *p = &players[i];
        double ms = p->playing_ns ? (p->playing_ns - p->started_ns) / 1e6 : -1.0;
        fprintf(f, "%s%.1f", i ? ", " : "", ms);
    }
    fprintf(f, "],\n\"window_received\": [");
    for (int i = 0; i < n_players; i++)
        fprintf(f, "%s%u", i ? ", " : "", players[i].window_received);
    fprintf(f, "],\n\"closed_by_server\": [");
    int first = 1;
    for (int i = 0; i < n_players; i++)
        if (players[i].closed_by_server) { fprintf(f, "%s%d", first ? "" : ", ", i); first = 0; }
    fprintf(f, "],\n\"latency\": {\"count\": %llu, \"overflow\": %llu, "
               "\"min_ns\": %llu, \"max_ns\": %llu, \"upper_us_counts\": [",
            (unsigned long long)lat_count, (unsigned long long)lat_overflow,
            (unsigned long long)(lat_count ? lat_min_ns : 0), (unsigned long long)lat_max_ns);
    first = 1;
    for (int i = 0; i < LAT_BUCKETS; i++)
        if (lat_hist[i]) {
            long long upper = i < FINE_BUCKETS
                                  ? (long long)(i + 1) * FINE_US
                                  : (long long)FINE_US * FINE_BUCKETS +
                                        (long long)(i - FINE_BUCKETS + 1) * COARSE_US;
            fprintf(f, "%s[%lld, %llu]", first ? "" : ", ", upper,
                    (unsigned long long)lat_hist[i]);
            first = 0;
        }
    fprintf(f, "]}}\n");
    fclose(f);
    rename(tmp, out_path);
}

/* -------------------------------------------------------------------------------- main */

static void usage(void) {
    fprintf(stderr, "usage: loadgen --port P --players N [--host H] [--app A] [--stream S]\n"
                    "  [--concurrency C] [--setup-timeout S] [--setup-budget S] [--max-seconds S]\n"
                    "  [--source ADDRESS] [--rate PLAYERS_PER_SECOND]\n"
                    "  [--ack-divisor D] [--out FILE] [--mode rtmp|http-flv]\n"
                    "  [--http-version 1.1|1.0]\n");
    exit(2);
}

static void on_stdin(uint64_t *deadline) {
    static char line[256];
    static size_t have;
    ssize_t n = read(0, line + have, sizeof line - 1 - have);
    if (n <= 0) { *deadline = 0; return; } /* driver gone: stop */
    have += (size_t)n;
    line[have] = 0;
    char *nl;
    while ((nl = strchr(line, '\n'))) {
        *nl = 0;
        unsigned long long a, b;
        if (sscanf(line, "W %llu %llu", &a, &b) == 2) { t0_ns = a; t1_ns = b; }
        else if (line[0] == 'Q') *deadline = 0;
        have -= (size_t)(nl + 1 - line);
        memmove(line, nl + 1, have + 1);
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--players")) n_players = atoi(v);
        else if (!strcmp(a, "--app")) app = v;
        else if (!strcmp(a, "--stream")) stream_name = v;
        else if (!strcmp(a, "--concurrency")) concurrency = atoi(v);
        else if (!strcmp(a, "--setup-timeout")) setup_timeout = atof(v);
        else if (!strcmp(a, "--setup-budget")) setup_budget = atof(v);
        else if (!strcmp(a, "--max-seconds")) max_seconds = atof(v);
        else if (!strcmp(a, "--ack-divisor")) ack_divisor = atoi(v);
        else if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--source")) {
            source.sin_family = AF_INET;
            if (inet_pton(AF_INET, v, &source.sin_addr) != 1) usage();
            bind_source = 1;
        }
        else if (!strcmp(a, "--rate")) arrival_rate = atof(v);
        else if (!strcmp(a, "--mode")) {
            if (!strcmp(v, "http-flv")) http_mode = 1;
            else if (strcmp(v, "rtmp")) usage();
        }
        else if (!strcmp(a, "--http-version")) {
            if (strcmp(v, "1.1") && strcmp(v, "1.0")) usage();
            http_version = v;
        }
        else usage();
        i++;
    }
    if (port <= 0 || n_players <= 0 || concurrency <= 0 || ack_divisor <= 0) usage();
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &server.sin_addr) != 1) usage();
    snprintf(tc_url, sizeof tc_url, "rtmp://%s:%d/%s", host, port, app);
    snprintf(http_request, sizeof http_request,
             "GET /%s/%s.flv HTTP/%s\r\nHost: %s:%d\r\nUser-Agent: pyfms-loadgen\r\n"
             "Accept: */*\r\n\r\n", app, stream_name, http_version, host, port);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)n_players + 16 > rl.rlim_cur)
        fprintf(stderr, "loadgen: open-file limit %llu is below %d players\n",
                (unsigned long long)rl.rlim_cur, n_players);

    players = calloc((size_t)n_players, sizeof *players);
    for (int i = 0; i < n_players; i++) players[i].fd = -1;
    for (int i = 8; i < HS_SIZE; i++) c1[i] = (uint8_t)(i * 131 + 7); /* time 0, zero: simple */
    epfd = epoll_create1(0);
    struct epoll_event sev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &sev);
    setvbuf(stdout, NULL, _IOLBF, 0);

    uint64_t start = now_ns(), deadline = start + (uint64_t)(max_seconds * 1e9);
    uint64_t last_expiry = start, last_progress = start;
    uint64_t budget_end = start + (uint64_t)(setup_budget * 1e9);
    static struct epoll_event events[1024];
    while (now_ns() < deadline) {
        uint64_t now = now_ns();
        int due = n_players;  /* with --rate: the players whose arrival time has come */
        if (arrival_rate > 0) {
            double arrived = (now - start) / 1e9 * arrival_rate + 1;
            if (arrived < n_players) due = (int)arrived;
        }
        while (next_player < due && in_setup < concurrency)
            start_player(&players[next_player++], now);
        if (!ready_sent && next_player == n_players && in_setup == 0) {
            printf("READY %d %d %llu %llu\n", n_playing, n_failed,
                   (unsigned long long)first_connect_ns, (unsigned long long)last_playing_ns);
            ready_sent = 1;
        }
        int k = epoll_wait(epfd, events, 1024, arrival_rate > 0 ? 2 : 50);
        now = now_ns();
        for (int e = 0; e < k; e++) {
            uint32_t id = events[e].data.u32;
            if (id == UINT32_MAX) { on_stdin(&deadline); continue; }
            struct player *p = &players[id];
            if (p->fd < 0) continue;
            if (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (p->state == S_CONNECTING) on_writable(p);
                else on_readable(p, now);
            }
            if (p->fd >= 0 && events[e].events & EPOLLOUT) on_writable(p);
        }
        if (now - last_expiry > 200000000u) {
            expire_setups(now);
            last_expiry = now;
            if (!ready_sent && now > budget_end) end_setup_phase();
        }
        if (!ready_sent && now - last_progress > 2000000000u) {
            printf("SETUP %.1f s: %d started, %d playing, %d failed\n", (now - start) / 1e9,
                   next_player, n_playing, n_failed);
            last_progress = now;
        }
    }
    write_summary();
    for (int i = 0; i < n_players; i++)
        if (players[i].fd >= 0) close_player(&players[i], players[i].state);
    printf("DONE\n");
    return 0;
}
