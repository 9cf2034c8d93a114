/* peertree-server — per-IP limits: sockets open, the connection rate (a
 * token bucket), trees created; and the log of refusals, once per offender
 * per minute.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * An address has an entry while it has a socket or a tree, or while its
 * bucket refills or its refusals are being counted; the sweep drops the rest,
 * so the table stays as small as the set of active addresses.
 */
#include "pt-server-private.h"

#include <stdarg.h>

#define LOG_INTERVAL_US (60 * G_USEC_PER_SEC)

typedef struct {
  guint sockets;        /* HTTP connections and WebSocket clients */
  guint trees;          /* trees created from this address, still open */
  double tokens;        /* connection-rate bucket */
  gint64 tokens_at;
  gint64 logged_at;     /* last refusal logged; 0: none in the last minute */
  guint unlogged;       /* refusals since, not logged */
} PtIpEntry;

void
pt_limits_init (PtServer *self)
{
  self->ips = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

void
pt_limits_finalize (PtServer *self)
{
  g_clear_pointer (&self->ips, g_hash_table_unref);
}

static PtIpEntry *
ip_entry (PtServer *self, const char *ip)
{
  PtIpEntry *e = g_hash_table_lookup (self->ips, ip);
  if (!e) {
    e = g_new0 (PtIpEntry, 1);
    e->tokens = self->conn_burst_per_ip;
    e->tokens_at = pt_now ();
    g_hash_table_insert (self->ips, g_strdup (ip), e);
  }
  return e;
}

/* Logs a refusal of @ip, unless one was logged in the last minute: then it
 * is counted, and the count is told with the next one logged. */
void
pt_limits_log_refusal (PtServer *self, const char *ip, const char *fmt, ...)
{
  if (!ip)
    return;
  PtIpEntry *e = ip_entry (self, ip);
  gint64 now = pt_now ();
  if (e->logged_at && now - e->logged_at < LOG_INTERVAL_US) {
    e->unlogged++;
    self->n_refusals_unlogged++;
    return;
  }
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *what = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (e->unlogged)
    g_message ("%s: %s (and %u refusals not logged in the last minute)", ip, what, e->unlogged);
  else
    g_message ("%s: %s (further refusals of this address are logged once a minute)", ip, what);
  e->logged_at = now;
  e->unlogged = 0;
  self->n_refusals_logged++;
}

gboolean
pt_limits_at_cap (PtServer *self, const char *ip)
{
  PtIpEntry *e = ip && self->max_connections_per_ip ? g_hash_table_lookup (self->ips, ip) : NULL;
  return e && e->sockets >= self->max_connections_per_ip;
}

gboolean
pt_limits_accept (PtServer *self, const char *ip)
{
  if (!ip || (!self->max_connections_per_ip && !self->connection_rate_per_ip))
    return TRUE;
  PtIpEntry *e = ip_entry (self, ip);
  if (self->max_connections_per_ip && e->sockets >= self->max_connections_per_ip) {
    self->metrics.rejected[PT_REJECT_IP_CONNECTIONS]++;
    pt_limits_log_refusal (self, ip, "connection refused: %u open (max-connections-per-ip)",
        e->sockets);
    return FALSE;
  }
  if (self->connection_rate_per_ip) {
    gint64 now = pt_now ();
    e->tokens += (double) (now - e->tokens_at) * self->connection_rate_per_ip / G_USEC_PER_SEC;
    if (e->tokens > self->conn_burst_per_ip)
      e->tokens = self->conn_burst_per_ip;
    e->tokens_at = now;
    if (e->tokens < 1.0) {
      self->metrics.rejected[PT_REJECT_IP_RATE]++;
      pt_limits_log_refusal (self, ip, "connection refused: more than %u per second "
          "(connection-rate-per-ip, connection-burst-per-ip %u)", self->connection_rate_per_ip,
          self->conn_burst_per_ip);
      return FALSE;
    }
    e->tokens -= 1.0;
  }
  return TRUE;
}

void
pt_limits_socket_opened (PtServer *self, const char *ip)
{
  if (ip)
    ip_entry (self, ip)->sockets++;
}

void
pt_limits_socket_closed (PtServer *self, const char *ip)
{
  PtIpEntry *e = ip && self->ips ? g_hash_table_lookup (self->ips, ip) : NULL;
  if (e && e->sockets)
    e->sockets--;
}

gboolean
pt_limits_tree_allowed (PtServer *self, const char *ip, PtFault *f)
{
  if (self->max_trees && g_hash_table_size (self->trees) >= self->max_trees) {
    pt_limits_log_refusal (self, ip ? ip : "(local)", "tree refused: the server has %u trees "
        "(max-trees)", self->max_trees);
    return pt_fault_set (f, PT_ERR_LIMIT, "the server has its maximum of %u trees",
        self->max_trees);
  }
  PtIpEntry *e = ip && self->max_trees_per_ip ? ip_entry (self, ip) : NULL;
  if (e && e->trees >= self->max_trees_per_ip) {
    pt_limits_log_refusal (self, ip, "tree refused: %u trees open (max-trees-per-ip)", e->trees);
    return pt_fault_set (f, PT_ERR_LIMIT, "at most %u trees may be created from one address",
        self->max_trees_per_ip);
  }
  return TRUE;
}

void
pt_limits_tree_added (PtServer *self, const char *ip)
{
  if (ip)
    ip_entry (self, ip)->trees++;
}

void
pt_limits_tree_removed (PtServer *self, const char *ip)
{
  PtIpEntry *e = ip && self->ips ? g_hash_table_lookup (self->ips, ip) : NULL;
  if (e && e->trees)
    e->trees--;
}

/* Once a second: forget the addresses with nothing open, a full bucket and
 * no refusal in the last minute. */
void
pt_limits_sweep (PtServer *self, gint64 now)
{
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->ips);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    PtIpEntry *e = value;
    double tokens = e->tokens +
        (double) (now - e->tokens_at) * self->connection_rate_per_ip / G_USEC_PER_SEC;
    if (e->sockets == 0 && e->trees == 0 &&
        (!self->connection_rate_per_ip || tokens >= self->conn_burst_per_ip) &&
        (!e->logged_at || now - e->logged_at >= LOG_INTERVAL_US))
      g_hash_table_iter_remove (&it);
  }
}

/* The address of the peer of @socket, newly allocated; NULL if unknown. */
char *
pt_socket_peer_ip (GSocket *socket)
{
  g_autoptr (GSocketAddress) remote = g_socket_get_remote_address (socket, NULL);
  if (!remote || !G_IS_INET_SOCKET_ADDRESS (remote))
    return NULL;
  return g_inet_address_to_string (
      g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (remote)));
}
