/* peertree — a GMainContext running in its own thread, for the elements
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-loop.h"

struct _PtLoop {
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  GMutex lock;
  GCond cond;
  gboolean running;
};

static gboolean
signal_running (gpointer data)
{
  PtLoop *self = data;

  g_mutex_lock (&self->lock);
  self->running = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  return G_SOURCE_REMOVE;
}

static gpointer
loop_thread (gpointer data)
{
  PtLoop *self = data;
  g_autoptr (GSource) idle = g_idle_source_new ();

  g_main_context_push_thread_default (self->context);
  g_source_set_callback (idle, signal_running, self, NULL);
  g_source_attach (idle, self->context);
  g_main_loop_run (self->loop);
  /* run what was queued before the quit (e.g. teardown callbacks), then
   * what is still in flight: cancelled or closing async operations (a TLS
   * close, a cancelled request) complete a little later, and their
   * callbacks may hold references to the element; bounded (2 s), and done
   * after 50 ms without an event */
  {
    gint64 now = g_get_monotonic_time ();
    gint64 end = now + 2 * G_USEC_PER_SEC, quiet = now + 50 * G_TIME_SPAN_MILLISECOND;

    while (now < end && now < quiet) {
      if (g_main_context_iteration (self->context, FALSE))
        quiet = g_get_monotonic_time () + 50 * G_TIME_SPAN_MILLISECOND;
      else
        g_usleep (2 * G_TIME_SPAN_MILLISECOND);
      now = g_get_monotonic_time ();
    }
  }
  g_main_context_pop_thread_default (self->context);
  return NULL;
}

PtLoop *
pt_loop_new (const gchar * thread_name)
{
  PtLoop *self = g_new0 (PtLoop, 1);

  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->context = g_main_context_new ();
  self->loop = g_main_loop_new (self->context, FALSE);
  self->thread = g_thread_new (thread_name, loop_thread, self);

  g_mutex_lock (&self->lock);
  while (!self->running)
    g_cond_wait (&self->cond, &self->lock);
  g_mutex_unlock (&self->lock);
  return self;
}

GMainContext *
pt_loop_get_context (PtLoop * self)
{
  return self->context;
}

gboolean
pt_loop_is_current (PtLoop * self)
{
  return g_main_context_is_owner (self->context);
}

void
pt_loop_invoke (PtLoop * self, GSourceFunc func, gpointer data, GDestroyNotify notify)
{
  g_autoptr (GSource) source = g_idle_source_new ();

  g_source_set_callback (source, func, data, notify);
  g_source_set_static_name (source, "[peertree] invoke");
  g_source_attach (source, self->context);
}

typedef struct {
  GSourceFunc func;
  gpointer data;
  GMutex lock;
  GCond cond;
  gboolean done;
} SyncCall;

static gboolean
sync_call (gpointer data)
{
  SyncCall *c = data;

  c->func (c->data);
  g_mutex_lock (&c->lock);
  c->done = TRUE;
  g_cond_broadcast (&c->cond);
  g_mutex_unlock (&c->lock);
  return G_SOURCE_REMOVE;
}

void
pt_loop_invoke_sync (PtLoop * self, GSourceFunc func, gpointer data)
{
  SyncCall c = { 0, };

  c.func = func;
  c.data = data;

  if (pt_loop_is_current (self)) {
    func (data);
    return;
  }
  g_mutex_init (&c.lock);
  g_cond_init (&c.cond);
  pt_loop_invoke (self, sync_call, &c, NULL);
  g_mutex_lock (&c.lock);
  while (!c.done)
    g_cond_wait (&c.cond, &c.lock);
  g_mutex_unlock (&c.lock);
  g_mutex_clear (&c.lock);
  g_cond_clear (&c.cond);
}

static gboolean
quit_loop (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

void
pt_loop_free (PtLoop * self)
{
  if (self == NULL)
    return;
  g_return_if_fail (!pt_loop_is_current (self));

  pt_loop_invoke (self, quit_loop, self->loop, NULL);
  g_thread_join (self->thread);
  g_main_loop_unref (self->loop);
  g_main_context_unref (self->context);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  g_free (self);
}
