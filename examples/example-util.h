/* Helpers for the examples: run the main context until an async call ends. */
#pragma once
#include <peertree.h>
#include <stdio.h>
#include <stdlib.h>

static void
ex_store (GObject *source, GAsyncResult *res, gpointer user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (res);
}

/* Waits for *res, then returns it (owned by *res). */
static GAsyncResult *
ex_wait (GAsyncResult **res)
{
  while (!*res)
    g_main_context_iteration (NULL, TRUE);
  return *res;
}

static void
ex_check (gboolean ok, GError *error, const char *what)
{
  if (!ok) {
    fprintf (stderr, "%s: %s\n", what, error ? error->message : "failed");
    exit (1);
  }
}

static PeerTreeClient *
ex_client (const char *url, const char *id)
{
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  PeerTreeClient *c = peer_tree_client_new (url, id);
  peer_tree_client_connect_async (c, NULL, ex_store, &res);
  ex_check (peer_tree_client_connect_finish (c, ex_wait (&res), &error), error, "connect");
  return c;
}
