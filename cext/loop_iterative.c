/* The iterative model: the tutorials' loop, made correct. One client at a
 * time: wait, accept one, drive it to its end with the per-connection loop. */
#include <errno.h>
#include <stdlib.h>

#include "conn.h"
#include "errors.h"
#include "protocol.h"
#include "server.h"

/* step: loop iterative */
int al_run_iterative(struct al_server *srv, struct al_error *err)
{
    char *buf = malloc(AL_READ_SIZE);   /* the one read buffer of this loop */
    if (buf == NULL) {
        al_error_set(err, "malloc", "read buffer", ENOMEM);
        al_close_listeners(srv);
        return AL_ERR;
    }
    struct al_pause pause = { 0.0, 0.0 };
    int rc = AL_OK;
    while (!al_stopping(srv)) {
        int ready = al_wait_for_clients(srv, &pause, -1.0, err);
        if (ready == AL_ERR) {
            rc = AL_ERR;
            break;
        }
        for (int i = 0; i < ready && !al_stopping(srv); i++) {
            struct al_error accept_err;
            char peer[AL_ADDRESS_LEN];
            int fd = al_accept_client(&accept_err, srv->ready[i], &pause, peer, sizeof peer);
            if (fd == AL_ERR) {
                al_log_accept_error(&accept_err);
                continue;
            }
            struct al_conn conn;
            al_conn_open(&conn, fd, peer, &srv->cfg, NULL, al_now());
            al_serve_connection(srv, &conn, buf, 1);
        }
    }
    al_close_listeners(srv);
    free(buf);
    return rc;
}
/* end step */
