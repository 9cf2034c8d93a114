/* idle-clients — see idle-clients.h.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "idle-clients.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define HANDSHAKES_AT_ONCE 64
#define MAX_FRAME (1 << 20)

enum { C_NEW, C_CONNECTING, C_UPGRADING, C_OPEN, C_READY, C_DEAD };

typedef struct {
  int fd;
  int state;
  guint index;
  GByteArray *in;
  gboolean joined;
} Conn;

struct _IdleClients {
  gboolean sio;
  guint port, n;
  char *prefix;
  Conn *conns;
  int ep;
  GThread *thread;
  guint next, handshaking;
  gint ready, failed, joined, errors, closed; /* atomics */
  gint stop, no_more;
  char *pending_send;                         /* handed over under lock */
  GMutex lock;
  gint64 *join_times;
};

static void
conn_dead (IdleClients *self, Conn *c, gboolean was_ready)
{
  if (c->state == C_DEAD)
    return;
  if (c->state < C_READY) {
    g_atomic_int_inc (&self->failed);
    self->handshaking--;
  } else if (was_ready) {
    g_atomic_int_inc (&self->closed);
  }
  c->state = C_DEAD;
  epoll_ctl (self->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close (c->fd);
  c->fd = -1;
}

/* One masked frame. The masking key is zero: the payload goes as it is. */
static gboolean
send_frame (Conn *c, int opcode, const void *data, gsize len)
{
  guint8 hdr[14];
  gsize h = 0;
  hdr[h++] = 0x80 | opcode;
  if (len < 126) {
    hdr[h++] = 0x80 | len;
  } else if (len < 65536) {
    hdr[h++] = 0x80 | 126;
    hdr[h++] = len >> 8;
    hdr[h++] = len & 0xff;
  } else {
    return FALSE;
  }
  memset (hdr + h, 0, 4);
  h += 4;
  struct iovec iov[2] = { { hdr, h }, { (void *) data, len } };
  struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
  ssize_t r = sendmsg (c->fd, &m, MSG_NOSIGNAL);
  return r == (ssize_t) (h + len);
}

static void
start_connect (IdleClients *self, Conn *c)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (self->port) };
  sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  c->fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  self->handshaking++;
  if (c->fd < 0) {
    c->state = C_DEAD;
    self->handshaking--;
    g_atomic_int_inc (&self->failed);
    return;
  }
  int one = 1;
  setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->state = C_CONNECTING;
  struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
  epoll_ctl (self->ep, EPOLL_CTL_ADD, c->fd, &ev);
  if (connect (c->fd, (struct sockaddr *) &sa, sizeof sa) < 0 && errno != EINPROGRESS)
    conn_dead (self, c, FALSE);
}

static void
on_connected (IdleClients *self, Conn *c)
{
  int err = 0;
  socklen_t l = sizeof err;
  getsockopt (c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
  if (err) {
    conn_dead (self, c, FALSE);
    return;
  }
  char req[512];
  int n = snprintf (req, sizeof req,
      "GET %s%s-%u HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      self->sio ? "/socket.io/?EIO=3&transport=websocket&clientId=" : "/", self->sio ? self->prefix : "",
      c->index, self->port);
  if (!self->sio)
    n = snprintf (req, sizeof req,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        self->port);
  if (send (c->fd, req, n, MSG_NOSIGNAL) != n) {
    conn_dead (self, c, FALSE);
    return;
  }
  c->state = C_UPGRADING;
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
  epoll_ctl (self->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
became_ready (IdleClients *self, Conn *c)
{
  c->state = C_READY;
  self->handshaking--;
  g_atomic_int_inc (&self->ready);
}

static void
on_text (IdleClients *self, Conn *c, const char *text, gsize len)
{
  if (self->sio) {
    if (c->state == C_OPEN && len >= 2 && text[0] == '4' && text[1] == '0')
      became_ready (self, c);
    return;
  }
  if (c->state == C_OPEN) {
    if (g_strstr_len (text, len, "\"ok\":true"))
      became_ready (self, c);
    else
      conn_dead (self, c, FALSE);
    return;
  }
  if (!g_strstr_len (text, len, "\"type\":\"reply\""))
    return; /* events (downstream-added...) */
  if (!g_strstr_len (text, len, "\"ok\":true")) {
    g_atomic_int_inc (&self->errors);
  } else if (!c->joined && g_strstr_len (text, len, "\"parent\"")) {
    c->joined = TRUE;
    guint i = g_atomic_int_add (&self->joined, 1);
    if (i < self->n)
      self->join_times[i] = g_get_monotonic_time ();
  }
}

/* Parses as many whole frames as @c->in holds. */
static void
parse_frames (IdleClients *self, Conn *c)
{
  GByteArray *in = c->in;
  gsize off = 0;
  while (c->state >= C_OPEN && c->state != C_DEAD) {
    const guint8 *p = in->data + off;
    gsize avail = in->len - off;
    if (avail < 2)
      break;
    int opcode = p[0] & 0x0f;
    guint64 len = p[1] & 0x7f;
    gsize h = 2;
    if (len == 126) {
      if (avail < 4)
        break;
      len = (guint64) p[2] << 8 | p[3];
      h = 4;
    } else if (len == 127) {
      if (avail < 10)
        break;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = len << 8 | p[2 + i];
      h = 10;
    }
    if (len > MAX_FRAME) {
      conn_dead (self, c, c->state == C_READY);
      return;
    }
    if (avail < h + len)
      break;
    const char *payload = (const char *) p + h;
    switch (opcode) {
      case 1:
        on_text (self, c, payload, len);
        break;
      case 8:
        conn_dead (self, c, c->state == C_READY);
        return;
      case 9:
        send_frame (c, 10, payload, len);
        break;
      default:
        break;
    }
    off += h + len;
  }
  if (c->state != C_DEAD)
    g_byte_array_remove_range (in, 0, off);
}

static void
on_readable (IdleClients *self, Conn *c)
{
  guint8 buf[65536];
  for (;;) {
    ssize_t r = recv (c->fd, buf, sizeof buf, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
      conn_dead (self, c, c->state == C_READY);
      return;
    }
    if (r < 0)
      break;
    g_byte_array_append (c->in, buf, r);
    if ((gsize) r < sizeof buf)
      break;
  }
  if (c->state == C_UPGRADING) {
    const char *end = g_strstr_len ((const char *) c->in->data, c->in->len, "\r\n\r\n");
    if (!end)
      return;
    if (c->in->len < 12 || memcmp (c->in->data + 9, "101", 3) != 0) {
      conn_dead (self, c, FALSE);
      return;
    }
    g_byte_array_remove_range (c->in, 0, end + 4 - (const char *) c->in->data);
    c->state = C_OPEN;
    if (!self->sio) {
      char hello[160];
      int n = snprintf (hello, sizeof hello,
          "{\"type\":\"hello\",\"id\":0,\"version\":1,\"clientId\":\"%s-%u\"}", self->prefix, c->index);
      if (!send_frame (c, 1, hello, n)) {
        conn_dead (self, c, FALSE);
        return;
      }
    }
  }
  parse_frames (self, c);
}

static gpointer
run (gpointer data)
{
  IdleClients *self = data;
  struct epoll_event evs[256];
  gint64 last_ping = g_get_monotonic_time ();
  while (!g_atomic_int_get (&self->stop)) {
    while (self->handshaking < HANDSHAKES_AT_ONCE && self->next < self->n &&
        !g_atomic_int_get (&self->no_more))
      start_connect (self, &self->conns[self->next++]);
    int n = epoll_wait (self->ep, evs, G_N_ELEMENTS (evs), 10);
    for (int i = 0; i < n; i++) {
      Conn *c = evs[i].data.ptr;
      if (c->state == C_DEAD)
        continue;
      if (c->state == C_CONNECTING) {
        if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
          on_connected (self, c);
        continue;
      }
      if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable (self, c);
    }
    g_mutex_lock (&self->lock);
    char *text = g_steal_pointer (&self->pending_send);
    g_mutex_unlock (&self->lock);
    if (text) {
      gsize len = strlen (text);
      for (guint i = 0; i < self->n; i++)
        if (self->conns[i].state == C_READY && !send_frame (&self->conns[i], 1, text, len))
          g_atomic_int_inc (&self->errors);
      g_free (text);
    }
    gint64 now = g_get_monotonic_time ();
    if (self->sio && now - last_ping > 20 * G_USEC_PER_SEC) {
      last_ping = now;
      for (guint i = 0; i < self->n; i++)
        if (self->conns[i].state == C_READY)
          send_frame (&self->conns[i], 1, "2", 1);
    }
  }
  return NULL;
}

IdleClients *
idle_clients_start (gboolean sio, guint port, guint n, const char *prefix)
{
  IdleClients *self = g_new0 (IdleClients, 1);
  self->sio = sio;
  self->port = port;
  self->n = n;
  self->prefix = g_strdup (prefix);
  self->conns = g_new0 (Conn, n);
  self->join_times = g_new0 (gint64, n);
  for (guint i = 0; i < n; i++) {
    self->conns[i].index = i;
    self->conns[i].fd = -1;
    self->conns[i].in = g_byte_array_new ();
  }
  self->ep = epoll_create1 (EPOLL_CLOEXEC);
  g_mutex_init (&self->lock);
  self->thread = g_thread_new ("idle-clients", run, self);
  return self;
}

guint idle_clients_ready (IdleClients *self) { return g_atomic_int_get (&self->ready); }
guint idle_clients_failed (IdleClients *self) { return g_atomic_int_get (&self->failed); }
guint idle_clients_joined (IdleClients *self) { return g_atomic_int_get (&self->joined); }
guint idle_clients_errors (IdleClients *self) { return g_atomic_int_get (&self->errors); }
guint idle_clients_closed (IdleClients *self) { return g_atomic_int_get (&self->closed); }
const gint64 *idle_clients_join_times (IdleClients *self) { return self->join_times; }

void
idle_clients_send_all (IdleClients *self, const char *text)
{
  g_mutex_lock (&self->lock);
  g_free (self->pending_send);
  self->pending_send = g_strdup (text);
  g_mutex_unlock (&self->lock);
}

void
idle_clients_stop_connecting (IdleClients *self)
{
  g_atomic_int_set (&self->no_more, 1);
}

void
idle_clients_stop (IdleClients *self)
{
  g_atomic_int_set (&self->stop, 1);
  g_thread_join (self->thread);
  for (guint i = 0; i < self->n; i++) {
    if (self->conns[i].fd >= 0)
      close (self->conns[i].fd);
    g_byte_array_unref (self->conns[i].in);
  }
  close (self->ep);
  g_free (self->conns);
  g_free (self->join_times);
  g_free (self->prefix);
  g_mutex_clear (&self->lock);
  g_free (self);
}
