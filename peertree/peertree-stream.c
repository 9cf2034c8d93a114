/* libpeertree — byte streams between clients, relayed by the server.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "peertree-client-private.h"

#include <string.h>

/**
 * SECTION:peertree-stream
 * @title: PeerTreeStream
 * @short_description: a #GIOStream to another client
 *
 * A #PeerTreeStream is a #GIOStream whose bytes travel through
 * peertree-server in binary WebSocket frames. Flow control is by credit:
 * each side may have at most the stream's window (256 KiB) in flight
 * towards the other, and a reader grants more as it consumes. A slow reader
 * therefore slows its writer down (writes wait) and nothing grows without
 * bound anywhere.
 *
 * Both streams are pollable, so the asynchronous GIO calls
 * (g_input_stream_read_async(), g_output_stream_write_all_async(),
 * g_output_stream_splice_async() …) work without threads. The synchronous
 * calls iterate the client's main context while they wait, so make them only
 * from the thread that runs that context, and only where blocking is fine.
 *
 * Closing the output stream ends this direction: the peer reads end-of-file
 * once it has read everything before it. Closing the whole stream (or
 * dropping the last reference) before both directions ended destroys it: the
 * peer's pending and later reads and writes fail with
 * %G_IO_ERROR_CONNECTION_CLOSED, as they do when either client disconnects.
 */

struct _PeerTreeStream {
  GIOStream parent_instance;
  PeerTreeClient *client;   /* strong */
  GMainContext *context;
  guint32 id;
  char *peer, *channel;
  gsize window;
  GInputStream *input;
  GOutputStream *output;

  GQueue incoming;          /* GBytes* */
  gsize offset;             /* into the head */
  gsize buffered;
  gsize consumed;           /* read since the last credit grant */
  gboolean eof;             /* the peer ended */
  gboolean ended;           /* we ended */
  GError *error;            /* destroyed, or the connection went */
  gint64 credit;            /* bytes we may still send */
  gboolean registered;
};

G_DEFINE_FINAL_TYPE (PeerTreeStream, peer_tree_stream, G_TYPE_IO_STREAM)

/* ------------------------------------------------------------------------ */
/* Readiness sources                                                        */

typedef struct {
  GSource source;
  PeerTreeStream *stream;
  gboolean for_output;
} ReadySource;

static gboolean input_ready (PeerTreeStream *self);
static gboolean output_ready (PeerTreeStream *self);

static gboolean
ready_prepare (GSource *source, gint *timeout)
{
  ReadySource *rs = (ReadySource *) source;
  *timeout = -1;
  return rs->for_output ? output_ready (rs->stream) : input_ready (rs->stream);
}

static gboolean
ready_check (GSource *source)
{
  gint timeout;
  return ready_prepare (source, &timeout);
}

static gboolean
ready_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  return callback ? callback (user_data) : G_SOURCE_CONTINUE;
}

static void
ready_finalize (GSource *source)
{
  g_object_unref (((ReadySource *) source)->stream);
}

static GSourceFuncs ready_funcs = { ready_prepare, ready_check, ready_dispatch, ready_finalize,
  NULL, NULL };

static GSource *
ready_source_new (PeerTreeStream *self, GObject *pollable, gboolean for_output,
    GCancellable *cancellable)
{
  ReadySource *child = (ReadySource *) g_source_new (&ready_funcs, sizeof (ReadySource));
  child->stream = g_object_ref (self);
  child->for_output = for_output;
  /* The pollable source dispatches (calls the GPollableSourceFunc) whenever
   * one of its children is ready. */
  GSource *src = g_pollable_source_new (pollable);
  g_source_add_child_source (src, (GSource *) child);
  g_source_unref ((GSource *) child);
  if (cancellable) {
    GSource *cs = g_cancellable_source_new (cancellable);
    g_source_set_dummy_callback (cs);
    g_source_add_child_source (src, cs);
    g_source_unref (cs);
  }
  return src;
}

/* Iterates the client's context until @ready holds (sync calls). */
static gboolean
wait_until (PeerTreeStream *self, gboolean (*ready) (PeerTreeStream *), GCancellable *cancellable,
    GError **error)
{
  while (!ready (self)) {
    if (g_cancellable_set_error_if_cancelled (cancellable, error))
      return FALSE;
    g_main_context_iteration (self->context, TRUE);
  }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Input                                                                    */

#define PT_TYPE_STREAM_INPUT (pt_stream_input_get_type ())
G_DECLARE_FINAL_TYPE (PtStreamInput, pt_stream_input, PT, STREAM_INPUT, GInputStream)
struct _PtStreamInput {
  GInputStream parent_instance;
  PeerTreeStream *stream; /* unowned: the GIOStream owns us */
};
static void pt_stream_input_pollable_init (GPollableInputStreamInterface *iface);
G_DEFINE_FINAL_TYPE_WITH_CODE (PtStreamInput, pt_stream_input, G_TYPE_INPUT_STREAM,
    G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_INPUT_STREAM, pt_stream_input_pollable_init))

static gboolean
input_ready (PeerTreeStream *self)
{
  return self->buffered > 0 || self->eof || self->error;
}

static gssize
input_read_nonblocking (GPollableInputStream *pollable, void *buffer, gsize count, GError **error)
{
  PeerTreeStream *self = PT_STREAM_INPUT (pollable)->stream;
  if (self->buffered == 0) {
    if (self->error) {
      g_propagate_error (error, g_error_copy (self->error));
      return -1;
    }
    if (self->eof)
      return 0;
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "no data yet");
    return -1;
  }
  gsize done = 0;
  while (done < count && !g_queue_is_empty (&self->incoming)) {
    GBytes *head = g_queue_peek_head (&self->incoming);
    gsize len;
    const guint8 *data = g_bytes_get_data (head, &len);
    gsize n = MIN (count - done, len - self->offset);
    memcpy ((guint8 *) buffer + done, data + self->offset, n);
    done += n;
    self->offset += n;
    if (self->offset == len) {
      g_bytes_unref (g_queue_pop_head (&self->incoming));
      self->offset = 0;
    }
  }
  self->buffered -= done;
  self->consumed += done;
  /* Grant credit back in quarters of the window: few frames, no stall. */
  if (self->consumed >= self->window / 4 && !self->error) {
    guint8 grant[4] = { self->consumed >> 24, self->consumed >> 16, self->consumed >> 8,
      self->consumed };
    _peer_tree_client_send_frame (self->client, self->id, PT_OP_CREDIT, grant, 4);
    self->consumed = 0;
  }
  return done;
}

static gboolean
input_is_readable (GPollableInputStream *pollable)
{
  return input_ready (PT_STREAM_INPUT (pollable)->stream);
}

static GSource *
input_create_source (GPollableInputStream *pollable, GCancellable *cancellable)
{
  return ready_source_new (PT_STREAM_INPUT (pollable)->stream, G_OBJECT (pollable), FALSE,
      cancellable);
}

static gssize
input_read (GInputStream *stream, void *buffer, gsize count, GCancellable *cancellable,
    GError **error)
{
  PeerTreeStream *self = PT_STREAM_INPUT (stream)->stream;
  if (!wait_until (self, input_ready, cancellable, error))
    return -1;
  return input_read_nonblocking (G_POLLABLE_INPUT_STREAM (stream), buffer, count, error);
}

static gboolean
input_close (GInputStream *stream, GCancellable *cancellable, GError **error)
{
  return TRUE; /* the GIOStream decides whether closing destroys the stream */
}

static void
pt_stream_input_pollable_init (GPollableInputStreamInterface *iface)
{
  iface->is_readable = input_is_readable;
  iface->create_source = input_create_source;
  iface->read_nonblocking = input_read_nonblocking;
}

static void
pt_stream_input_init (PtStreamInput *self)
{
}

static void
pt_stream_input_class_init (PtStreamInputClass *klass)
{
  GInputStreamClass *in = G_INPUT_STREAM_CLASS (klass);
  in->read_fn = input_read;
  in->close_fn = input_close;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

#define PT_TYPE_STREAM_OUTPUT (pt_stream_output_get_type ())
G_DECLARE_FINAL_TYPE (PtStreamOutput, pt_stream_output, PT, STREAM_OUTPUT, GOutputStream)
struct _PtStreamOutput {
  GOutputStream parent_instance;
  PeerTreeStream *stream;
};
static void pt_stream_output_pollable_init (GPollableOutputStreamInterface *iface);
G_DEFINE_FINAL_TYPE_WITH_CODE (PtStreamOutput, pt_stream_output, G_TYPE_OUTPUT_STREAM,
    G_IMPLEMENT_INTERFACE (G_TYPE_POLLABLE_OUTPUT_STREAM, pt_stream_output_pollable_init))

static gboolean
output_ready (PeerTreeStream *self)
{
  return self->credit > 0 || self->error;
}

static gssize
output_write_nonblocking (GPollableOutputStream *pollable, const void *buffer, gsize count,
    GError **error)
{
  PeerTreeStream *self = PT_STREAM_OUTPUT (pollable)->stream;
  if (self->error) {
    g_propagate_error (error, g_error_copy (self->error));
    return -1;
  }
  if (self->credit <= 0) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "peer has not read enough");
    return -1;
  }
  gsize n = MIN (count, MIN ((gsize) self->credit, PT_MAX_FRAME_PAYLOAD));
  if (!_peer_tree_client_send_frame (self->client, self->id, PT_OP_DATA, buffer, n)) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
        "not connected to the server");
    return -1;
  }
  self->credit -= n;
  return n;
}

static gboolean
output_is_writable (GPollableOutputStream *pollable)
{
  return output_ready (PT_STREAM_OUTPUT (pollable)->stream);
}

static GSource *
output_create_source (GPollableOutputStream *pollable, GCancellable *cancellable)
{
  return ready_source_new (PT_STREAM_OUTPUT (pollable)->stream, G_OBJECT (pollable), TRUE,
      cancellable);
}

static gssize
output_write (GOutputStream *stream, const void *buffer, gsize count, GCancellable *cancellable,
    GError **error)
{
  PeerTreeStream *self = PT_STREAM_OUTPUT (stream)->stream;
  if (!wait_until (self, output_ready, cancellable, error))
    return -1;
  return output_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (stream), buffer, count, error);
}

static gboolean
output_close (GOutputStream *stream, GCancellable *cancellable, GError **error)
{
  PeerTreeStream *self = PT_STREAM_OUTPUT (stream)->stream;
  if (!self->ended && !self->error) {
    self->ended = TRUE;
    _peer_tree_client_send_frame (self->client, self->id, PT_OP_END, NULL, 0);
  }
  return TRUE;
}

static void
pt_stream_output_pollable_init (GPollableOutputStreamInterface *iface)
{
  iface->is_writable = output_is_writable;
  iface->create_source = output_create_source;
  iface->write_nonblocking = output_write_nonblocking;
}

static void
pt_stream_output_init (PtStreamOutput *self)
{
}

static void
pt_stream_output_class_init (PtStreamOutputClass *klass)
{
  GOutputStreamClass *out = G_OUTPUT_STREAM_CLASS (klass);
  out->write_fn = output_write;
  out->close_fn = output_close;
}

/* ------------------------------------------------------------------------ */
/* The stream                                                               */

static void
unregister (PeerTreeStream *self)
{
  if (self->registered) {
    self->registered = FALSE;
    _peer_tree_client_remove_stream (self->client, self->id);
  }
}

PeerTreeStream *
_peer_tree_stream_new (PeerTreeClient *client, guint32 id, const char *peer, const char *channel,
    gsize window)
{
  PeerTreeStream *self = g_object_new (PEER_TREE_TYPE_STREAM, NULL);
  self->client = g_object_ref (client);
  self->context = g_main_context_ref (_peer_tree_client_get_context (client));
  self->id = id;
  self->peer = g_strdup (peer);
  self->channel = g_strdup (channel);
  self->window = window;
  self->credit = window;
  _peer_tree_client_add_stream (client, id, self);
  self->registered = TRUE;
  return self;
}

void
_peer_tree_stream_fail (PeerTreeStream *self, const char *why)
{
  if (!self->error)
    self->error = g_error_new (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
        "stream %u to %s: %s", self->id, self->peer, why);
  unregister (self);
  g_main_context_wakeup (self->context);
}

void
_peer_tree_stream_receive (PeerTreeStream *self, guint8 op, GBytes *payload)
{
  gsize len = g_bytes_get_size (payload);
  switch (op) {
    case PT_OP_DATA:
      if (self->eof || self->buffered + len > self->window) {
        _peer_tree_stream_fail (self, "peer broke the protocol");
        _peer_tree_client_send_frame (self->client, self->id, PT_OP_RESET, NULL, 0);
        return;
      }
      if (len) {
        g_queue_push_tail (&self->incoming, g_bytes_ref (payload));
        self->buffered += len;
      }
      break;
    case PT_OP_CREDIT:
      if (len == 4) {
        const guint8 *d = g_bytes_get_data (payload, NULL);
        self->credit += (guint32) d[0] << 24 | (guint32) d[1] << 16 | (guint32) d[2] << 8 | d[3];
      }
      break;
    case PT_OP_END:
      self->eof = TRUE;
      break;
    case PT_OP_RESET:
      _peer_tree_stream_fail (self, "the peer destroyed the stream");
      return;
  }
  if (self->eof && self->ended)
    unregister (self);
}

static gboolean
peer_tree_stream_close (GIOStream *stream, GCancellable *cancellable, GError **error)
{
  PeerTreeStream *self = PEER_TREE_STREAM (stream);
  gboolean complete = self->eof && self->buffered == 0;
  g_output_stream_close (self->output, cancellable, NULL);
  g_input_stream_close (self->input, cancellable, NULL);
  /* Closing before the peer ended (or with unread data) destroys the stream. */
  if (!self->error && self->registered && !complete)
    _peer_tree_client_send_frame (self->client, self->id, PT_OP_RESET, NULL, 0);
  if (!self->error)
    self->error = g_error_new (G_IO_ERROR, G_IO_ERROR_CLOSED, "stream closed");
  unregister (self);
  return TRUE;
}

static GInputStream *
peer_tree_stream_get_input (GIOStream *stream)
{
  return PEER_TREE_STREAM (stream)->input;
}

static GOutputStream *
peer_tree_stream_get_output (GIOStream *stream)
{
  return PEER_TREE_STREAM (stream)->output;
}

/**
 * peer_tree_stream_get_id:
 * @self: a #PeerTreeStream
 *
 * Returns: the id the server gave the stream.
 */
guint32
peer_tree_stream_get_id (PeerTreeStream *self)
{
  return self->id;
}

/**
 * peer_tree_stream_get_peer:
 * @self: a #PeerTreeStream
 *
 * Returns: the clientId at the other end.
 */
const char *
peer_tree_stream_get_peer (PeerTreeStream *self)
{
  return self->peer;
}

/**
 * peer_tree_stream_get_channel:
 * @self: a #PeerTreeStream
 *
 * Returns: the channel named when the stream was opened.
 */
const char *
peer_tree_stream_get_channel (PeerTreeStream *self)
{
  return self->channel;
}

static void
peer_tree_stream_init (PeerTreeStream *self)
{
  PtStreamInput *in = g_object_new (PT_TYPE_STREAM_INPUT, NULL);
  PtStreamOutput *out = g_object_new (PT_TYPE_STREAM_OUTPUT, NULL);
  in->stream = self;
  out->stream = self;
  self->input = G_INPUT_STREAM (in);
  self->output = G_OUTPUT_STREAM (out);
  g_queue_init (&self->incoming);
}

static void
peer_tree_stream_finalize (GObject *object)
{
  PeerTreeStream *self = PEER_TREE_STREAM (object);
  unregister (self);
  g_queue_clear_full (&self->incoming, (GDestroyNotify) g_bytes_unref);
  g_clear_error (&self->error);
  g_object_unref (self->input);
  g_object_unref (self->output);
  g_object_unref (self->client);
  g_main_context_unref (self->context);
  g_free (self->peer);
  g_free (self->channel);
  G_OBJECT_CLASS (peer_tree_stream_parent_class)->finalize (object);
}

static void
peer_tree_stream_class_init (PeerTreeStreamClass *klass)
{
  GIOStreamClass *io = G_IO_STREAM_CLASS (klass);
  G_OBJECT_CLASS (klass)->finalize = peer_tree_stream_finalize;
  io->get_input_stream = peer_tree_stream_get_input;
  io->get_output_stream = peer_tree_stream_get_output;
  io->close_fn = peer_tree_stream_close;
}
