/* peertree-server — the counters of GET /metrics, and its text in
 * Prometheus' exposition format 0.0.4.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every module bumps its own counters in self->metrics (plain integers: the
 * server has one thread); gauges are read from the server's tables when the
 * text is made. Names follow Prometheus' conventions: the peertree_ prefix,
 * base units, _total for counters, a HELP and a TYPE line for each family,
 * every label value of a labelled counter present from the start (0), label
 * values escaped. docs/dashboard.md lists them.
 */
#include "pt-server-private.h"

#include <string.h>

/* Per-tree series are bounded: the first trees by id. */
#define PT_METRICS_MAX_TREES 1000

static const char *const reject_names[PT_N_REJECT] = {
  [PT_REJECT_IP_CONNECTIONS] = "max-connections-per-ip",
  [PT_REJECT_IP_RATE] = "connection-rate-per-ip",
  [PT_REJECT_SOCKETS] = "descriptors",
  [PT_REJECT_MAX_CLIENTS] = "max-clients",
  [PT_REJECT_ORIGIN] = "origin",
  [PT_REJECT_EVENT_STREAMS] = "max-event-streams",
};

static const char *const move_names[PT_N_MOVE] = {
  [PT_MOVE_PARENT_LEFT] = PT_REASON_PARENT_LEFT,
  [PT_MOVE_SOURCE_RETURNED] = PT_REASON_SOURCE_RETURNED,
  [PT_MOVE_REBUILT] = PT_REASON_REBUILT,
  [PT_MOVE_RECONNECTED] = PT_REASON_RECONNECTED,
  [PT_MOVE_REJOINED] = PT_REASON_REJOINED,
  [PT_MOVE_SHED] = PT_REASON_SHED,
};

void
pt_metrics_count_error (PtServer *self, const char *code)
{
  const char *const *codes = pt_error_codes ();
  for (guint i = 0; codes[i] && i < PT_METRICS_MAX_CODES; i++)
    if (g_strcmp0 (codes[i], code) == 0) {
      self->metrics.errors[i]++;
      return;
    }
}

void
pt_metrics_count_move (PtServer *self, const char *reason)
{
  for (guint i = 0; i < PT_N_MOVE; i++)
    if (g_strcmp0 (move_names[i], reason) == 0) {
      self->metrics.moves[i]++;
      return;
    }
}

void
pt_metrics_escape_label (GString *out, const char *value)
{
  for (const char *p = value; *p; p++) {
    if (*p == '\\')
      g_string_append (out, "\\\\");
    else if (*p == '"')
      g_string_append (out, "\\\"");
    else if (*p == '\n')
      g_string_append (out, "\\n");
    else
      g_string_append_c (out, *p);
  }
}

static void
family (GString *out, const char *name, const char *type, const char *help)
{
  g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
sample (GString *out, const char *name, guint64 value)
{
  g_string_append_printf (out, "%s %" G_GUINT64_FORMAT "\n", name, value);
}

static void
labelled (GString *out, const char *name, const char *label, const char *value, guint64 v)
{
  g_string_append_printf (out, "%s{%s=\"", name, label);
  pt_metrics_escape_label (out, value);
  g_string_append_printf (out, "\"} %" G_GUINT64_FORMAT "\n", v);
}

static void
counter (GString *out, const char *name, const char *help, guint64 value)
{
  family (out, name, "counter", help);
  sample (out, name, value);
}

static void
gauge (GString *out, const char *name, const char *help, guint64 value)
{
  family (out, name, "gauge", help);
  sample (out, name, value);
}

GString *
pt_metrics_text (PtServer *self)
{
  const PtMetrics *m = &self->metrics;
  GString *out = g_string_sized_new (4096);

  gauge (out, "peertree_clients", "Clients connected that said hello.",
      pt_server_get_n_clients (self));
  gauge (out, "peertree_connections", "WebSocket connections open, with or without hello.",
      self->conns ? g_hash_table_size (self->conns) : 0);
  gauge (out, "peertree_event_streams", "Subscribers of GET /dashboard/events.",
      self->event_streams ? g_hash_table_size (self->event_streams) : 0);
  gauge (out, "peertree_trees", "Trees open, those waiting for their source included.",
      g_hash_table_size (self->trees));

  family (out, "peertree_tree_members", "gauge",
      "Members of a tree, its source included (the first 1000 trees by id).");
  g_autoptr (GList) ids = g_hash_table_get_keys (self->trees);
  ids = g_list_sort (ids, (GCompareFunc) strcmp);
  guint n = 0;
  for (GList *l = ids; l && n < PT_METRICS_MAX_TREES; l = l->next, n++) {
    TreeEntry *t = g_hash_table_lookup (self->trees, l->data);
    labelled (out, "peertree_tree_members", "tree", t->id, pt_tree_size (t->tree));
  }

  counter (out, "peertree_trees_created_total", "Trees created.", m->trees_created);
  counter (out, "peertree_trees_closed_total", "Trees closed.", m->trees_closed);
  counter (out, "peertree_joins_total", "Joins of a tree by a client not in it.", m->joins);
  family (out, "peertree_reparentings_total", "counter",
      "Members given a new parent, by reason: their parent left (parent-left), the source came "
      "back under another id (source-returned), a position not kept after a restart (rebuilt), "
      "reconnect-upstream (reconnected), a join by a member (rejoined), moved off an overloaded or "
      "smaller parent (shed).");
  for (guint i = 0; i < PT_N_MOVE; i++)
    labelled (out, "peertree_reparentings_total", "reason", move_names[i], m->moves[i]);
  counter (out, "peertree_source_losses_total",
      "Sources that disconnected from their tree (its grace period began).", m->source_losses);
  counter (out, "peertree_reports_total", "Link reports accepted.", m->reports);
  counter (out, "peertree_received_messages_total",
      "WebSocket messages read from clients (text and binary).", m->messages_received);
  counter (out, "peertree_received_bytes_total", "Bytes of those messages.", m->bytes_received);
  counter (out, "peertree_relayed_messages_total",
      "Messages relayed from one client to another (signal, emit, room-emit per member, "
      "service-call, topic per subscriber, stream frames).", m->messages_relayed);
  counter (out, "peertree_relayed_bytes_total", "Bytes of those messages as sent.",
      m->bytes_relayed);

  family (out, "peertree_errors_total", "counter", "Error replies, by error code.");
  const char *const *codes = pt_error_codes ();
  for (guint i = 0; codes[i] && i < PT_METRICS_MAX_CODES; i++)
    labelled (out, "peertree_errors_total", "code", codes[i], m->errors[i]);

  family (out, "peertree_rejected_connections_total", "counter",
      "Connections refused, by limit: per-IP sockets and rate (at accept), the descriptor cap, "
      "max-clients and allowed-origins (at the upgrade), max-event-streams.");
  for (guint i = 0; i < PT_N_REJECT; i++)
    labelled (out, "peertree_rejected_connections_total", "reason", reject_names[i],
        m->rejected[i]);
  counter (out, "peertree_event_streams_dropped_total",
      "Subscribers of GET /dashboard/events closed for not reading.", m->event_streams_dropped);
  pt_cluster_add_metrics (self, out);
  return out;
}
