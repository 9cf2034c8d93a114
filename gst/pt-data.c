/* peertree GStreamer elements — data down the tree, signed by the source
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * See pt-data.h. The signatures are GnuTLS's Ed25519 (no hand-written
 * crypto): the source signs "peertree-data-1\0" TREE-ID "\0" and every byte
 * of a message before its signature; members verify the same bytes.
 */
#include "pt-data.h"

#include <string.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>

GST_DEBUG_CATEGORY_STATIC (pt_data_debug);
#define GST_CAT_DEFAULT pt_data_debug

#define PT_DATA_VERSION 1
#define KIND_DATA 0
#define KIND_RESUME 1
#define KIND_FRAGMENT 2
/* the largest SCTP message a link takes (the default a=max-message-size,
 * which webrtcbin neither sends nor raises): a longer message goes in
 * fragments, [version, 2, seq (8), index, count] + a piece of the message */
#define SCTP_MAX 65536
#define FRAG_HEADER 12
#define FRAG_MAX 4
/* partially received messages kept per parent link */
#define FRAG_SLOTS 4
#define HEADER_LEN 22
#define SIG_LEN 64
#define RESUME_LEN 11
#define RESUME_NEW 0x01         /* a new member: live messages only */
#define MAX_FRAME (HEADER_LEN + PT_DATA_MAX_CAPS + PT_DATA_MAX_PAYLOAD + SIG_LEN)
#define SIGN_CONTEXT "peertree-data-1"
#define NO_PTS G_MAXUINT64
/* the source waits (at most PACE_WAIT_US per message) while a child has
 * this much queued, and is woken when it falls below the low threshold */
#define PACE_BYTES (1024 * 1024)
#define PACE_LOW_BYTES (256 * 1024)
#define PACE_WAIT_US (2 * G_USEC_PER_SEC)
/* unordered channels: the sequence numbers seen, as SRTP's replay window */
#define SEEN_WINDOW 1024

typedef struct {
  guint64 seq;
  GBytes *frame;
} PtDataMsg;

typedef struct {
  guint64 seq;
  guint count;
  guint have;                   /* bit i: fragment i is in */
  GByteArray *pieces[FRAG_MAX];
} PtDataFrag;

typedef struct {
  gint ref_count;
  PtDataHub *hub;               /* a ref */
  gchar *id;
  GstWebRTCDataChannel *channel;        /* a ref */
  gboolean is_parent;
  gulong message_id, open_id, low_id;

  /* hub lock */
  gboolean gone;
  gboolean live;                /* child: RESUME received */
  guint64 from;                 /* child: what it has; only later messages go */
  gboolean stalled;             /* child: made the source wait in vain; not waited for
                                 * again until its queue drains */
  gboolean reported;            /* parent: rejected once, dropped since */
  gboolean resumed;             /* parent: RESUME sent */
  gboolean ordered;             /* parent: its channel is ordered */
  /* parent: messages in fragments (the channel's thread only) */
  PtDataFrag frags[FRAG_SLOTS];
} PtDataPeer;

struct _PtDataHub {
  gint ref_count;
  GMutex lock;
  GCond cond;                   /* a child's queue went low */
  GMutex deliver_lock;          /* callbacks one at a time, in order */
  PtDataCallbacks callbacks;
  gpointer user_data;
  GSource *retry;               /* a member: RESUME again until it is sent */

  /* lock */
  gchar *tree_id;
  gchar *key_b64;               /* member: the key verified against */
  gnutls_privkey_t priv;        /* the source */
  gnutls_pubkey_t pub;          /* the source, and members */
  PtDataTamper tamper;
  guint window_max;             /* messages (PT_DATA_WINDOW_MESSAGES) */
  gboolean know_start;          /* member: a gap from last_seq is a loss */
  guint64 last_seq;             /* published (source) or delivered (member) */
  gboolean resumed_once;        /* member: has sent a RESUME in this tree */
  GQueue window;                /* PtDataMsg, oldest first */
  gsize window_bytes;
  GHashTable *children;         /* id → PtDataPeer */
  PtDataPeer *parent;
  guint64 seen_top;             /* unordered parent channel */
  guint64 seen[SEEN_WINDOW / 64];

  guint64 n_published, n_received, n_delivered, n_forged, n_replayed, n_lost, n_resent,
      n_dropped, n_malformed;
};

static void
init_debug (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (pt_data_debug, "peertreedata", 0,
        "peertree data channels and their signatures");
    g_once_init_leave (&done, 1);
  }
}

/* ---------------------------------------------------------------------- */
/* wire format */

static void
put_u64 (guint8 * p, guint64 v)
{
  for (gint i = 7; i >= 0; i--, v >>= 8)
    p[i] = v & 0xff;
}

static guint64
get_u64 (const guint8 * p)
{
  guint64 v = 0;

  for (gint i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

typedef struct {
  guint64 seq;
  guint64 pts;
  guint channel;
  const gchar *caps;            /* in the frame, not NUL-terminated */
  gsize caps_len;
  const guint8 *payload;
  gsize payload_len;
  const guint8 *sig;
} PtDataView;

static gboolean
parse_data (const guint8 * f, gsize len, PtDataView * v)
{
  if (len < HEADER_LEN + SIG_LEN || len > MAX_FRAME || f[0] != PT_DATA_VERSION
      || f[1] != KIND_DATA)
    return FALSE;
  v->seq = get_u64 (f + 2);
  v->pts = get_u64 (f + 10);
  v->channel = (f[18] << 8) | f[19];
  v->caps_len = (f[20] << 8) | f[21];
  if (v->caps_len > PT_DATA_MAX_CAPS || HEADER_LEN + v->caps_len + SIG_LEN > len)
    return FALSE;
  v->caps = (const gchar *) f + HEADER_LEN;
  v->payload = f + HEADER_LEN + v->caps_len;
  v->payload_len = len - HEADER_LEN - v->caps_len - SIG_LEN;
  v->sig = f + len - SIG_LEN;
  return v->payload_len <= PT_DATA_MAX_PAYLOAD && v->seq > 0;
}

/* What the source signs: the context, the tree id, the frame before its
 * signature. (transfer full) */
static GByteArray *
signed_bytes (const gchar * tree_id, const guint8 * frame, gsize unsigned_len)
{
  GByteArray *b = g_byte_array_sized_new (sizeof SIGN_CONTEXT + strlen (tree_id) + 1 +
      unsigned_len);

  g_byte_array_append (b, (const guint8 *) SIGN_CONTEXT, sizeof SIGN_CONTEXT);
  g_byte_array_append (b, (const guint8 *) tree_id, strlen (tree_id) + 1);
  g_byte_array_append (b, frame, unsigned_len);
  return b;
}

static gboolean
verify_locked (PtDataHub * hub, const guint8 * frame, gsize len)
{
  g_autoptr (GByteArray) b = NULL;
  gnutls_datum_t data, sig;

  if (hub->pub == NULL || hub->tree_id == NULL)
    return FALSE;
  b = signed_bytes (hub->tree_id, frame, len - SIG_LEN);
  data.data = b->data;
  data.size = b->len;
  sig.data = (guint8 *) frame + len - SIG_LEN;
  sig.size = SIG_LEN;
  return gnutls_pubkey_verify_data2 (hub->pub, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &sig) >= 0;
}

/* ---------------------------------------------------------------------- */
/* the hub */

static void
msg_free (PtDataMsg * m)
{
  g_bytes_unref (m->frame);
  g_free (m);
}

static PtDataPeer *
peer_ref (PtDataPeer * p)
{
  g_atomic_int_inc (&p->ref_count);
  return p;
}

static void
peer_unref (gpointer data)
{
  PtDataPeer *p = data;

  if (!g_atomic_int_dec_and_test (&p->ref_count))
    return;
  for (guint i = 0; i < FRAG_SLOTS; i++)
    for (guint j = 0; j < FRAG_MAX; j++)
      g_clear_pointer (&p->frags[i].pieces[j], g_byte_array_unref);
  gst_object_unref (p->channel);
  pt_data_hub_unref (p->hub);
  g_free (p->id);
  g_free (p);
}

static void
peer_closure_unref (gpointer data, GClosure * closure)
{
  (void) closure;
  peer_unref (data);
}

/* Disconnects the peer's handlers; the caller drops the hub's ref after. */
static void
peer_detach (PtDataPeer * p)
{
  g_clear_signal_handler (&p->message_id, p->channel);
  g_clear_signal_handler (&p->open_id, p->channel);
  g_clear_signal_handler (&p->low_id, p->channel);
}

PtDataHub *
pt_data_hub_new (const PtDataCallbacks * callbacks, gpointer user_data)
{
  PtDataHub *hub = g_new0 (PtDataHub, 1);

  init_debug ();
  hub->ref_count = 1;
  g_mutex_init (&hub->lock);
  g_cond_init (&hub->cond);
  g_mutex_init (&hub->deliver_lock);
  if (callbacks)
    hub->callbacks = *callbacks;
  hub->user_data = user_data;
  g_queue_init (&hub->window);
  hub->children = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  hub->window_max = PT_DATA_WINDOW_MESSAGES;
  return hub;
}

PtDataHub *
pt_data_hub_ref (PtDataHub * hub)
{
  g_atomic_int_inc (&hub->ref_count);
  return hub;
}

static void
clear_peers (PtDataHub * hub)
{
  GPtrArray *peers = g_ptr_array_new_with_free_func (peer_unref);
  GHashTableIter it;
  gpointer value;

  g_mutex_lock (&hub->lock);
  g_hash_table_iter_init (&it, hub->children);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    ((PtDataPeer *) value)->gone = TRUE;
    g_ptr_array_add (peers, value);
  }
  g_hash_table_remove_all (hub->children);
  if (hub->parent) {
    hub->parent->gone = TRUE;
    g_ptr_array_add (peers, g_steal_pointer (&hub->parent));
  }
  g_cond_broadcast (&hub->cond);
  g_mutex_unlock (&hub->lock);
  for (guint i = 0; i < peers->len; i++)
    peer_detach (g_ptr_array_index (peers, i));
  g_ptr_array_unref (peers);
}

void
pt_data_hub_close (PtDataHub * hub)
{
  GSource *retry;

  g_mutex_lock (&hub->lock);
  retry = g_steal_pointer (&hub->retry);
  g_mutex_unlock (&hub->lock);
  if (retry) {
    g_source_destroy (retry);
    g_source_unref (retry);
  }
  clear_peers (hub);
  /* waits for a callback under way */
  g_mutex_lock (&hub->deliver_lock);
  hub->user_data = NULL;
  memset (&hub->callbacks, 0, sizeof hub->callbacks);
  g_mutex_unlock (&hub->deliver_lock);
}

void
pt_data_hub_unref (PtDataHub * hub)
{
  if (hub == NULL)
    return;
  if (!g_atomic_int_dec_and_test (&hub->ref_count))
    return;
  clear_peers (hub);
  g_queue_clear_full (&hub->window, (GDestroyNotify) msg_free);
  g_hash_table_unref (hub->children);
  if (hub->priv)
    gnutls_privkey_deinit (hub->priv);
  if (hub->pub)
    gnutls_pubkey_deinit (hub->pub);
  g_free (hub->tree_id);
  g_free (hub->key_b64);
  g_mutex_clear (&hub->lock);
  g_cond_clear (&hub->cond);
  g_mutex_clear (&hub->deliver_lock);
  g_free (hub);
}

static gboolean
gnutls_failed (gint ret, const gchar * what, GError ** error)
{
  if (ret >= 0)
    return FALSE;
  g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED, "%s: %s", what,
      gnutls_strerror (ret));
  return TRUE;
}

static void
reset_sequence_locked (PtDataHub * hub, const gchar * tree_id, gboolean force)
{
  GHashTableIter it;
  gpointer value;

  if (!force && g_strcmp0 (hub->tree_id, tree_id) == 0)
    return;
  /* the children start again too (they are told of the new key) */
  g_hash_table_iter_init (&it, hub->children);
  while (g_hash_table_iter_next (&it, NULL, &value))
    ((PtDataPeer *) value)->from = 0;
  g_free (hub->tree_id);
  hub->tree_id = g_strdup (tree_id);
  hub->last_seq = 0;
  hub->resumed_once = FALSE;
  hub->know_start = FALSE;
  hub->seen_top = 0;
  memset (hub->seen, 0, sizeof hub->seen);
  g_queue_clear_full (&hub->window, (GDestroyNotify) msg_free);
  hub->window_bytes = 0;
}

void
pt_data_hub_set_tree (PtDataHub * hub, const gchar * tree_id)
{
  g_mutex_lock (&hub->lock);
  reset_sequence_locked (hub, tree_id, FALSE);
  g_mutex_unlock (&hub->lock);
}

gchar *
pt_data_hub_make_key (PtDataHub * hub, GError ** error)
{
  gnutls_privkey_t priv = NULL;
  gnutls_pubkey_t pub = NULL;
  gnutls_datum_t x = { NULL, 0 };
  gnutls_ecc_curve_t curve;
  gchar *b64 = NULL;

  if (gnutls_failed (gnutls_privkey_init (&priv), "gnutls_privkey_init", error)
      || gnutls_failed (gnutls_privkey_generate2 (priv, GNUTLS_PK_EDDSA_ED25519, 0, 0, NULL,
              0), "Ed25519 key generation", error)
      || gnutls_failed (gnutls_pubkey_init (&pub), "gnutls_pubkey_init", error)
      || gnutls_failed (gnutls_pubkey_import_privkey (pub, priv, 0, 0),
          "gnutls_pubkey_import_privkey", error)
      || gnutls_failed (gnutls_pubkey_export_ecc_raw2 (pub, &curve, &x, NULL, 0),
          "Ed25519 public key export", error))
    goto out;
  if (curve != GNUTLS_ECC_CURVE_ED25519 || x.size != 32) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "GnuTLS made an unexpected Ed25519 key (%u bytes)", x.size);
    goto out;
  }
  b64 = g_base64_encode (x.data, x.size);
  g_mutex_lock (&hub->lock);
  if (hub->priv)
    gnutls_privkey_deinit (hub->priv);
  if (hub->pub)
    gnutls_pubkey_deinit (hub->pub);
  hub->priv = g_steal_pointer (&priv);
  hub->pub = g_steal_pointer (&pub);
  g_mutex_unlock (&hub->lock);
  GST_INFO ("data key %s", b64);

out:
  gnutls_free (x.data);
  if (priv)
    gnutls_privkey_deinit (priv);
  if (pub)
    gnutls_pubkey_deinit (pub);
  return b64;
}

gboolean
pt_data_hub_set_key (PtDataHub * hub, const gchar * tree_id, const gchar * key_b64,
    GError ** error)
{
  g_autofree guchar *raw = NULL;
  gsize n = 0;
  gnutls_pubkey_t pub = NULL;
  gnutls_datum_t x;

  g_return_val_if_fail (tree_id != NULL && key_b64 != NULL, FALSE);

  raw = g_base64_decode (key_b64, &n);
  if (n != 32) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "The data key of tree %s is not an Ed25519 public key (%" G_GSIZE_FORMAT " bytes)",
        tree_id, n);
    return FALSE;
  }
  x.data = raw;
  x.size = 32;
  if (gnutls_failed (gnutls_pubkey_init (&pub), "gnutls_pubkey_init", error))
    return FALSE;
  if (gnutls_failed (gnutls_pubkey_import_ecc_raw (pub, GNUTLS_ECC_CURVE_ED25519, &x, NULL),
          "Ed25519 public key import", error)) {
    gnutls_pubkey_deinit (pub);
    return FALSE;
  }
  g_mutex_lock (&hub->lock);
  /* a new key is a new source (a restarted one numbers from 1 again) */
  reset_sequence_locked (hub, tree_id, hub->key_b64 && g_strcmp0 (hub->key_b64, key_b64) != 0);
  g_free (hub->key_b64);
  hub->key_b64 = g_strdup (key_b64);
  if (hub->pub)
    gnutls_pubkey_deinit (hub->pub);
  hub->pub = pub;
  g_mutex_unlock (&hub->lock);
  return TRUE;
}

gboolean
pt_data_hub_has_key (PtDataHub * hub)
{
  gboolean ret;

  g_mutex_lock (&hub->lock);
  ret = hub->pub != NULL;
  g_mutex_unlock (&hub->lock);
  return ret;
}

void
pt_data_hub_set_tamper (PtDataHub * hub, PtDataTamper tamper)
{
  g_mutex_lock (&hub->lock);
  hub->tamper = tamper;
  g_mutex_unlock (&hub->lock);
}

void
pt_data_hub_apply_test_hooks (PtDataHub * hub, GObject * element)
{
  guint window = GPOINTER_TO_UINT (g_object_get_data (element, PT_DATA_WINDOW_KEY));

  pt_data_hub_set_tamper (hub, GPOINTER_TO_INT (g_object_get_data (element,
              PT_DATA_TAMPER_KEY)));
  g_mutex_lock (&hub->lock);
  if (window > 0 && window < PT_DATA_WINDOW_MESSAGES)
    hub->window_max = window;
  g_mutex_unlock (&hub->lock);
}

/* ---------------------------------------------------------------------- */
/* sending (hub lock) */

static guint64
channel_buffered (GstWebRTCDataChannel * ch)
{
  guint64 n = 0;

  g_object_get (ch, "buffered-amount", &n, NULL);
  return n;
}

static void
send_frame (PtDataHub * hub, PtDataPeer * child, GBytes * frame)
{
  g_autoptr (GError) error = NULL;
  gsize len;
  const guint8 *f = g_bytes_get_data (frame, &len);
  const gsize piece = SCTP_MAX - FRAG_HEADER;
  guint count = (len + piece - 1) / piece;

  if (channel_buffered (child->channel) > PT_DATA_CHILD_MAX_BUFFERED) {
    /* a child that does not read is not allowed to grow our memory: it
     * sees the gap and is told of its loss */
    hub->n_dropped++;
    return;
  }
  if (len <= SCTP_MAX) {
    if (!gst_webrtc_data_channel_send_data_full (child->channel, frame, &error))
      GST_DEBUG ("child %s: %s", child->id, error->message);
    return;
  }
  for (guint i = 0; i < count && error == NULL; i++) {
    gsize off = i * piece, n = MIN (piece, len - off);
    guint8 *d = g_malloc (FRAG_HEADER + n);
    g_autoptr (GBytes) b = NULL;

    d[0] = PT_DATA_VERSION;
    d[1] = KIND_FRAGMENT;
    memcpy (d + 2, f + 2, 8);   /* the message's seq */
    d[10] = i;
    d[11] = count;
    memcpy (d + FRAG_HEADER, f + off, n);
    b = g_bytes_new_take (d, FRAG_HEADER + n);
    if (!gst_webrtc_data_channel_send_data_full (child->channel, b, &error))
      GST_DEBUG ("child %s: %s", child->id, error->message);
  }
}

/* To every child that is live and does not have it (and the test hook). */
static void
forward_locked (PtDataHub * hub, guint64 seq, GBytes * frame)
{
  GHashTableIter it;
  gpointer value;
  g_autoptr (GBytes) out = g_bytes_ref (frame);

  if (hub->tamper == PT_DATA_TAMPER_DROP)
    return;
  if (hub->tamper == PT_DATA_TAMPER_FLIP) {
    gsize len;
    const guint8 *d = g_bytes_get_data (frame, &len);
    guint8 *copy = g_memdup2 (d, len);

    copy[len - SIG_LEN - 1] ^= 0x01;
    g_bytes_unref (out);
    out = g_bytes_new_take (copy, len);
  }
  g_hash_table_iter_init (&it, hub->children);
  while (g_hash_table_iter_next (&it, NULL, &value)) {
    PtDataPeer *child = value;

    if (!child->live || seq <= child->from)
      continue;
    send_frame (hub, child, out);
    if (hub->tamper == PT_DATA_TAMPER_REPLAY)
      send_frame (hub, child, out);
    if (hub->tamper == PT_DATA_TAMPER_INJECT) {
      /* the next number, with this message's signature */
      gsize len;
      guint8 *copy = g_memdup2 (g_bytes_get_data (frame, &len), g_bytes_get_size (frame));
      g_autoptr (GBytes) injected = NULL;

      put_u64 (copy + 2, seq + 1);
      injected = g_bytes_new_take (copy, len);
      send_frame (hub, child, injected);
    }
  }
}

static void
keep_locked (PtDataHub * hub, guint64 seq, GBytes * frame)
{
  PtDataMsg *m = g_new0 (PtDataMsg, 1);

  m->seq = seq;
  m->frame = g_bytes_ref (frame);
  g_queue_push_tail (&hub->window, m);
  hub->window_bytes += g_bytes_get_size (frame);
  while (hub->window.length > hub->window_max
      || (hub->window_bytes > PT_DATA_WINDOW_BYTES && hub->window.length > 1)) {
    PtDataMsg *old = g_queue_pop_head (&hub->window);

    hub->window_bytes -= g_bytes_get_size (old->frame);
    msg_free (old);
  }
}

/* The source waits while a live child has too much queued (bounded: a
 * child that makes it wait PACE_WAIT_US in vain is not waited for again
 * until its queue drains, so one dead link cannot slow the tree down). */
static void
pace_locked (PtDataHub * hub)
{
  gint64 deadline = g_get_monotonic_time () + PACE_WAIT_US;

  for (;;) {
    GHashTableIter it;
    gpointer value;
    gboolean busy = FALSE, timed_out;

    g_hash_table_iter_init (&it, hub->children);
    while (!busy && g_hash_table_iter_next (&it, NULL, &value)) {
      PtDataPeer *child = value;

      busy = child->live && !child->stalled
          && channel_buffered (child->channel) > PACE_BYTES;
    }
    if (!busy)
      return;
    timed_out = !g_cond_wait_until (&hub->cond, &hub->lock, deadline);
    if (timed_out) {
      g_hash_table_iter_init (&it, hub->children);
      while (g_hash_table_iter_next (&it, NULL, &value)) {
        PtDataPeer *child = value;

        if (child->live && channel_buffered (child->channel) > PACE_BYTES) {
          GST_WARNING ("child %s does not drain its data channel: not waited for", child->id);
          child->stalled = TRUE;
        }
      }
      return;
    }
  }
}

gboolean
pt_data_hub_publish (PtDataHub * hub, guint channel, const gchar * caps, GstClockTime pts,
    const guint8 * data, gsize size, GError ** error)
{
  gsize caps_len = caps ? strlen (caps) : 0;
  gsize len = HEADER_LEN + caps_len + size + SIG_LEN;
  guint8 *f;
  g_autoptr (GBytes) frame = NULL;
  g_autoptr (GByteArray) to_sign = NULL;
  gnutls_datum_t d, sig = { NULL, 0 };
  gint ret;
  guint64 seq;

  if (size > PT_DATA_MAX_PAYLOAD || caps_len > PT_DATA_MAX_CAPS || channel > G_MAXUINT16) {
    g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT,
        "A data message has at most %u bytes and caps of %u (this one: %" G_GSIZE_FORMAT
        " bytes, caps %" G_GSIZE_FORMAT ")", PT_DATA_MAX_PAYLOAD, PT_DATA_MAX_CAPS, size,
        caps_len);
    return FALSE;
  }

  g_mutex_lock (&hub->lock);
  if (hub->priv == NULL || hub->tree_id == NULL) {
    g_mutex_unlock (&hub->lock);
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "No tree to send data to yet (the tree is not created)");
    return FALSE;
  }
  pace_locked (hub);
  seq = ++hub->last_seq;
  f = g_malloc (len);
  f[0] = PT_DATA_VERSION;
  f[1] = KIND_DATA;
  put_u64 (f + 2, seq);
  put_u64 (f + 10, GST_CLOCK_TIME_IS_VALID (pts) ? pts : NO_PTS);
  f[18] = (channel >> 8) & 0xff;
  f[19] = channel & 0xff;
  f[20] = (caps_len >> 8) & 0xff;
  f[21] = caps_len & 0xff;
  if (caps_len)
    memcpy (f + HEADER_LEN, caps, caps_len);
  if (size)
    memcpy (f + HEADER_LEN + caps_len, data, size);
  to_sign = signed_bytes (hub->tree_id, f, len - SIG_LEN);
  d.data = to_sign->data;
  d.size = to_sign->len;
  ret = gnutls_privkey_sign_data2 (hub->priv, GNUTLS_SIGN_EDDSA_ED25519, 0, &d, &sig);
  if (ret < 0 || sig.size != SIG_LEN) {
    hub->last_seq--;
    g_mutex_unlock (&hub->lock);
    g_free (f);
    gnutls_free (sig.data);
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "Ed25519 signature failed: %s", ret < 0 ? gnutls_strerror (ret) : "wrong size");
    return FALSE;
  }
  memcpy (f + len - SIG_LEN, sig.data, SIG_LEN);
  gnutls_free (sig.data);
  frame = g_bytes_new_take (f, len);
  keep_locked (hub, seq, frame);
  forward_locked (hub, seq, frame);
  hub->n_published++;
  g_mutex_unlock (&hub->lock);
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* receiving (a data channel's thread) */

static void
send_resume_locked (PtDataHub * hub, PtDataPeer * parent)
{
  guint8 f[RESUME_LEN];
  g_autoptr (GBytes) b = NULL;
  g_autoptr (GError) error = NULL;
  GstWebRTCDataChannelState state;

  if (parent->resumed)
    return;
  g_object_get (parent->channel, "ready-state", &state, NULL);
  if (state != GST_WEBRTC_DATA_CHANNEL_STATE_OPEN)
    return;
  f[0] = PT_DATA_VERSION;
  f[1] = KIND_RESUME;
  put_u64 (f + 2, hub->last_seq);
  f[10] = hub->resumed_once ? 0 : RESUME_NEW;
  b = g_bytes_new (f, sizeof f);
  if (gst_webrtc_data_channel_send_data_full (parent->channel, b, &error)) {
    parent->resumed = TRUE;
    GST_INFO ("parent %s: resume after %" G_GUINT64_FORMAT "%s", parent->id, hub->last_seq,
        hub->resumed_once ? "" : " (new member)");
    /* a member that moved misses whatever its new parent does not resend */
    if (hub->resumed_once)
      hub->know_start = TRUE;
    hub->resumed_once = TRUE;
  } else {
    GST_WARNING ("parent %s: %s", parent->id, error->message);
  }
}

/* A child says what it has: the messages after it, then live ones. */
static void
on_resume_locked (PtDataHub * hub, PtDataPeer * child, guint64 last, gboolean is_new)
{
  guint resent = 0;

  if (child->live)
    return;
  child->live = TRUE;
  /* a new member starts with the next message; one that moved gets what
   * followed its last (all the window has, if that is older) */
  child->from = is_new ? hub->last_seq : last;
  for (GList * l = hub->window.head; l; l = l->next) {
    PtDataMsg *m = l->data;

    if (m->seq > child->from) {
      send_frame (hub, child, m->frame);
      resent++;
    }
  }
  hub->n_resent += resent;
  GST_INFO ("child %s resumes after %" G_GUINT64_FORMAT ": %u resent", child->id, last,
      resent);
}

/* unordered channels: TRUE if @seq is new (and notes it); @lost gets the
 * numbers that left the window unseen */
static gboolean
seen_note (PtDataHub * hub, guint64 seq, guint64 * lost)
{
  guint64 d;

  *lost = 0;
  if (hub->seen_top == 0) {
    hub->seen_top = seq;
    hub->seen[0] = 1;
    return TRUE;
  }
  if (seq > hub->seen_top) {
    guint64 shift = seq - hub->seen_top;

    for (guint64 i = 0; i < MIN (shift, (guint64) SEEN_WINDOW); i++) {
      guint64 bit = SEEN_WINDOW - 1 - i;

      if (!(hub->seen[bit / 64] & (G_GUINT64_CONSTANT (1) << (bit % 64))))
        (*lost)++;
      /* shift by one: bit b takes bit b-1 */
      for (gint w = SEEN_WINDOW / 64 - 1; w >= 0; w--) {
        hub->seen[w] <<= 1;
        if (w > 0)
          hub->seen[w] |= hub->seen[w - 1] >> 63;
      }
    }
    if (shift > SEEN_WINDOW)
      *lost += shift - SEEN_WINDOW;
    hub->seen_top = seq;
    hub->seen[0] |= 1;
    return TRUE;
  }
  d = hub->seen_top - seq;
  if (d >= SEEN_WINDOW || (hub->seen[d / 64] & (G_GUINT64_CONSTANT (1) << (d % 64))))
    return FALSE;
  hub->seen[d / 64] |= G_GUINT64_CONSTANT (1) << (d % 64);
  return TRUE;
}

static void
on_parent_data (PtDataHub * hub, PtDataPeer * parent, GBytes * bytes)
{
  gsize len;
  const guint8 *f = g_bytes_get_data (bytes, &len);
  PtDataView v;
  const gchar *reason = NULL;
  g_autofree gchar *detail = NULL;
  g_autofree gchar *caps = NULL;
  g_autofree gchar *parent_id = NULL;
  g_autoptr (GBytes) payload = NULL;
  guint64 lost = 0, lost_before = 0;

  g_mutex_lock (&hub->lock);
  if (parent->gone || parent != hub->parent || parent->reported) {
    g_mutex_unlock (&hub->lock);
    return;
  }
  hub->n_received++;
  if (!parse_data (f, len, &v)) {
    hub->n_malformed++;
    hub->n_forged++;
    reason = "forged";
    detail = g_strdup_printf ("a malformed message of %" G_GSIZE_FORMAT " bytes", len);
  } else if (!verify_locked (hub, f, len)) {
    hub->n_forged++;
    reason = "forged";
    detail = g_strdup_printf ("message %" G_GUINT64_FORMAT " does not carry the source's "
        "signature", v.seq);
  } else if (parent->ordered) {
    if (v.seq <= hub->last_seq) {
      hub->n_replayed++;
      reason = "replayed";
      detail = g_strdup_printf ("message %" G_GUINT64_FORMAT " again (%" G_GUINT64_FORMAT
          " delivered)", v.seq, hub->last_seq);
    } else if (hub->know_start && v.seq > hub->last_seq + 1) {
      lost = v.seq - hub->last_seq - 1;
    }
  } else if (!seen_note (hub, v.seq, &lost)) {
    hub->n_replayed++;
    reason = "replayed";
    detail = g_strdup_printf ("message %" G_GUINT64_FORMAT " again, or older than the window",
        v.seq);
  }
  if (reason) {
    parent->reported = TRUE;
    parent_id = g_strdup (parent->id);
    g_mutex_lock (&hub->deliver_lock);
    g_mutex_unlock (&hub->lock);
    GST_WARNING ("parent %s: %s: %s", parent_id, reason, detail);
    if (hub->callbacks.rejected)
      hub->callbacks.rejected (hub->user_data, parent_id, reason, detail);
    g_mutex_unlock (&hub->deliver_lock);
    return;
  }
  if (lost) {
    hub->n_lost += lost;
    lost_before = v.seq;
  }
  if (v.seq > hub->last_seq)
    hub->last_seq = v.seq;
  hub->know_start = TRUE;
  keep_locked (hub, v.seq, bytes);
  forward_locked (hub, v.seq, bytes);
  hub->n_delivered++;
  caps = g_strndup (v.caps, v.caps_len);
  payload = g_bytes_new_from_bytes (bytes, v.payload - f, v.payload_len);
  /* handed over: callbacks in order, without the hub's lock */
  g_mutex_lock (&hub->deliver_lock);
  g_mutex_unlock (&hub->lock);
  if (lost && hub->callbacks.lost)
    hub->callbacks.lost (hub->user_data, lost_before, lost);
  if (hub->callbacks.deliver)
    hub->callbacks.deliver (hub->user_data, v.seq, v.channel, caps,
        v.pts == NO_PTS ? GST_CLOCK_TIME_NONE : v.pts, payload);
  g_mutex_unlock (&hub->deliver_lock);
}

/* A fragment from the parent: the whole message once every piece is in
 * (transfer full), else NULL. Bounded: FRAG_SLOTS messages of at most
 * MAX_FRAME bytes; the oldest partial one is dropped for a new one. */
static GBytes *
add_fragment (PtDataPeer * p, const guint8 * f, gsize len)
{
  guint64 seq;
  guint index, count;
  PtDataFrag *slot = NULL;
  gsize total = 0;
  GByteArray *whole;

  if (len <= FRAG_HEADER || f[0] != PT_DATA_VERSION)
    return NULL;
  seq = get_u64 (f + 2);
  index = f[10];
  count = f[11];
  if (count < 2 || count > FRAG_MAX || index >= count)
    return NULL;
  for (guint i = 0; i < FRAG_SLOTS && !slot; i++)
    if (p->frags[i].count && p->frags[i].seq == seq)
      slot = &p->frags[i];
  if (slot == NULL) {
    /* a free slot, else the oldest (lowest seq) */
    slot = &p->frags[0];
    for (guint i = 0; i < FRAG_SLOTS; i++) {
      if (p->frags[i].count == 0) {
        slot = &p->frags[i];
        break;
      }
      if (p->frags[i].seq < slot->seq)
        slot = &p->frags[i];
    }
    for (guint j = 0; j < FRAG_MAX; j++)
      g_clear_pointer (&slot->pieces[j], g_byte_array_unref);
    slot->seq = seq;
    slot->count = count;
    slot->have = 0;
  }
  if (slot->count != count || (slot->have & (1u << index)))
    return NULL;
  slot->pieces[index] = g_byte_array_sized_new (len - FRAG_HEADER);
  g_byte_array_append (slot->pieces[index], f + FRAG_HEADER, len - FRAG_HEADER);
  slot->have |= 1u << index;
  for (guint j = 0; j < count; j++)
    total += slot->pieces[j] ? slot->pieces[j]->len : 0;
  if (total > MAX_FRAME) {
    slot->count = 0;
    return NULL;
  }
  if (slot->have != (1u << count) - 1)
    return NULL;
  whole = g_byte_array_sized_new (total);
  for (guint j = 0; j < count; j++) {
    g_byte_array_append (whole, slot->pieces[j]->data, slot->pieces[j]->len);
    g_clear_pointer (&slot->pieces[j], g_byte_array_unref);
  }
  slot->count = 0;
  return g_byte_array_free_to_bytes (whole);
}

static void
on_message_data (GstWebRTCDataChannel * ch, GBytes * bytes, gpointer data)
{
  PtDataPeer *p = data;
  PtDataHub *hub = p->hub;
  gsize len = 0;
  const guint8 *f;

  (void) ch;
  if (bytes == NULL)
    return;
  if (p->is_parent) {
    f = g_bytes_get_data (bytes, &len);
    if (len > 1 && f[1] == KIND_FRAGMENT) {
      g_autoptr (GBytes) whole = add_fragment (p, f, len);

      if (whole)
        on_parent_data (hub, p, whole);
      return;
    }
    on_parent_data (hub, p, bytes);
    return;
  }
  f = g_bytes_get_data (bytes, &len);
  g_mutex_lock (&hub->lock);
  if (!p->gone && len == RESUME_LEN && f[0] == PT_DATA_VERSION && f[1] == KIND_RESUME)
    on_resume_locked (hub, p, get_u64 (f + 2), (f[10] & RESUME_NEW) != 0);
  else if (!p->gone)
    hub->n_malformed++;
  g_mutex_unlock (&hub->lock);
}

static void
on_open (GstWebRTCDataChannel * ch, gpointer data)
{
  PtDataPeer *p = data;

  (void) ch;
  g_mutex_lock (&p->hub->lock);
  if (!p->gone && p->is_parent)
    send_resume_locked (p->hub, p);
  g_mutex_unlock (&p->hub->lock);
}

static void
on_buffered_amount_low (GstWebRTCDataChannel * ch, gpointer data)
{
  PtDataPeer *p = data;

  (void) ch;
  g_mutex_lock (&p->hub->lock);
  p->stalled = FALSE;
  g_cond_broadcast (&p->hub->cond);
  g_mutex_unlock (&p->hub->lock);
}

static PtDataPeer *
peer_new (PtDataHub * hub, const gchar * id, GstWebRTCDataChannel * channel,
    gboolean is_parent)
{
  PtDataPeer *p = g_new0 (PtDataPeer, 1);

  p->ref_count = 1;
  p->hub = pt_data_hub_ref (hub);
  p->id = g_strdup (id);
  p->channel = gst_object_ref (channel);
  p->is_parent = is_parent;
  p->message_id = g_signal_connect_data (channel, "on-message-data",
      G_CALLBACK (on_message_data), peer_ref (p), peer_closure_unref, 0);
  if (is_parent) {
    gboolean ordered = TRUE;

    g_object_get (channel, "ordered", &ordered, NULL);
    p->ordered = ordered;
    p->open_id = g_signal_connect_data (channel, "on-open", G_CALLBACK (on_open),
        peer_ref (p), peer_closure_unref, 0);
  } else {
    g_object_set (channel, "buffered-amount-low-threshold", (guint64) PACE_LOW_BYTES, NULL);
    p->low_id = g_signal_connect_data (channel, "on-buffered-amount-low",
        G_CALLBACK (on_buffered_amount_low), peer_ref (p), peer_closure_unref, 0);
  }
  return p;
}

void
pt_data_hub_add_child (PtDataHub * hub, const gchar * child_id,
    GstWebRTCDataChannel * channel)
{
  PtDataPeer *p = peer_new (hub, child_id, channel, FALSE);
  PtDataPeer *old;

  g_mutex_lock (&hub->lock);
  old = g_hash_table_lookup (hub->children, child_id);
  if (old) {
    old->gone = TRUE;
    g_hash_table_remove (hub->children, child_id);
  }
  g_hash_table_insert (hub->children, g_strdup (child_id), p);
  g_mutex_unlock (&hub->lock);
  if (old) {
    peer_detach (old);
    peer_unref (old);
  }
}

/* Safety net: a RESUME that could not be sent when the channel opened (the
 * channel said it was open but did not take it yet) is tried again. */
static gboolean
retry_resume (gpointer data)
{
  PtDataHub *hub = data;

  g_mutex_lock (&hub->lock);
  if (hub->parent && !hub->parent->gone && !hub->parent->resumed)
    send_resume_locked (hub, hub->parent);
  g_mutex_unlock (&hub->lock);
  return G_SOURCE_CONTINUE;
}

void
pt_data_hub_set_context (PtDataHub * hub, GMainContext * context)
{
  GSource *retry = g_timeout_source_new (250);

  g_source_set_callback (retry, retry_resume, pt_data_hub_ref (hub),
      (GDestroyNotify) pt_data_hub_unref);
  g_source_set_static_name (retry, "[peertree] data resume");
  g_mutex_lock (&hub->lock);
  if (hub->retry) {
    g_mutex_unlock (&hub->lock);
    g_source_unref (retry);     /* drops the hub's ref with it */
    return;
  }
  hub->retry = retry;
  g_mutex_unlock (&hub->lock);
  g_source_attach (retry, context);
}

void
pt_data_hub_remove_child (PtDataHub * hub, const gchar * child_id)
{
  PtDataPeer *p;

  g_mutex_lock (&hub->lock);
  p = g_hash_table_lookup (hub->children, child_id);
  if (p) {
    p->gone = TRUE;
    g_hash_table_remove (hub->children, child_id);
  }
  g_cond_broadcast (&hub->cond);
  g_mutex_unlock (&hub->lock);
  if (p) {
    peer_detach (p);
    peer_unref (p);
  }
}

void
pt_data_hub_set_parent (PtDataHub * hub, const gchar * parent_id,
    GstWebRTCDataChannel * channel)
{
  PtDataPeer *p = channel ? peer_new (hub, parent_id, channel, TRUE) : NULL;
  PtDataPeer *old;

  g_mutex_lock (&hub->lock);
  old = hub->parent;
  if (old)
    old->gone = TRUE;
  hub->parent = p;
  if (p)
    send_resume_locked (hub, p);        /* if already open */
  g_mutex_unlock (&hub->lock);
  if (old) {
    peer_detach (old);
    peer_unref (old);
  }
}

gboolean
pt_data_hub_get_parent_reliability (PtDataHub * hub, gboolean * ordered,
    gint * max_retransmits)
{
  GstWebRTCDataChannel *ch = NULL;

  g_mutex_lock (&hub->lock);
  if (hub->parent)
    ch = gst_object_ref (hub->parent->channel);
  g_mutex_unlock (&hub->lock);
  if (ch == NULL)
    return FALSE;
  g_object_get (ch, "ordered", ordered, "max-retransmits", max_retransmits, NULL);
  gst_object_unref (ch);
  return TRUE;
}

GstStructure *
pt_data_hub_get_stats (PtDataHub * hub)
{
  GstStructure *s;
  GHashTableIter it;
  gpointer value;
  guint live = 0;
  gboolean parent_open = FALSE;
  GstStructure *parent_channel;

  g_mutex_lock (&hub->lock);
  g_hash_table_iter_init (&it, hub->children);
  while (g_hash_table_iter_next (&it, NULL, &value))
    live += ((PtDataPeer *) value)->live;
  parent_open = hub->parent && hub->parent->resumed;
  if (hub->parent) {
    gint max_retransmits = -1;

    g_object_get (hub->parent->channel, "max-retransmits", &max_retransmits, NULL);
    s = gst_structure_new ("parent-channel", "ordered", G_TYPE_BOOLEAN, hub->parent->ordered,
        "max-retransmits", G_TYPE_INT, max_retransmits, NULL);
  } else {
    s = NULL;
  }
  parent_channel = s;
  s = gst_structure_new ("data",
      "published", G_TYPE_UINT64, hub->n_published,
      "received", G_TYPE_UINT64, hub->n_received,
      "delivered", G_TYPE_UINT64, hub->n_delivered,
      "forged", G_TYPE_UINT64, hub->n_forged,
      "replayed", G_TYPE_UINT64, hub->n_replayed,
      "lost", G_TYPE_UINT64, hub->n_lost,
      "resent", G_TYPE_UINT64, hub->n_resent,
      "dropped", G_TYPE_UINT64, hub->n_dropped,
      "malformed", G_TYPE_UINT64, hub->n_malformed,
      "last-seq", G_TYPE_UINT64, hub->last_seq,
      "window-messages", G_TYPE_UINT, hub->window.length,
      "window-bytes", G_TYPE_UINT64, (guint64) hub->window_bytes,
      "children", G_TYPE_UINT, g_hash_table_size (hub->children),
      "live-children", G_TYPE_UINT, live, "parent-open", G_TYPE_BOOLEAN, parent_open, NULL);
  g_mutex_unlock (&hub->lock);
  if (parent_channel) {
    gboolean ordered = TRUE;
    gint max_retransmits = -1;

    gst_structure_get (parent_channel, "ordered", G_TYPE_BOOLEAN, &ordered, "max-retransmits",
        G_TYPE_INT, &max_retransmits, NULL);
    gst_structure_set (s, "parent-ordered", G_TYPE_BOOLEAN, ordered,
        "parent-max-retransmits", G_TYPE_INT, max_retransmits, NULL);
    gst_structure_free (parent_channel);
  }
  return s;
}
