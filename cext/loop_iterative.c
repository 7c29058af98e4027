/* The iterative model: the tutorials' loop, made correct. One client at a
 * time: the skeleton waits and accepts (serve.c, al_accept_loop); the hand-off
 * drives the client to its end with the per-connection loop, right here. */
#include <errno.h>
#include <stdlib.h>

#include "conn.h"
#include "errors.h"
#include "protocol.h"
#include "server.h"

struct iterative {
    struct al_hand_off hand_off;   /* first: the skeleton's pointer is this one's */
    struct al_server *srv;
    char *buf;                     /* the one read buffer of this loop */
};

/* step: loop iterative */
/* Serves the connection before the loop accepts another. The skeleton is
 * blocked meanwhile, so the connection's loop is told to close the listeners
 * as soon as a stop is seen: new clients are refused while this one finishes. */
static void serve_here(struct al_hand_off *h, int fd, const char *peer)
{
    struct iterative *it = (struct iterative *)h;
    struct al_conn conn;
    al_conn_open(&conn, fd, peer, &it->srv->cfg, NULL, al_now());
    al_serve_connection(it->srv, &conn, it->buf, al_close_listeners);
}

/* Never more than the one being served, and that one is over when the skeleton asks. */
static int none_active(struct al_hand_off *h)
{
    (void)h;
    return 0;
}

int al_run_iterative(struct al_server *srv, struct al_error *err)
{
    struct iterative it = { { serve_here, none_active, NULL }, srv, al_read_buffer(srv, err) };
    if (it.buf == NULL)
        return AL_ERR;
    int rc = al_accept_loop(srv, &it.hand_off, err);
    free(it.buf);
    return rc;
}
/* end step */
