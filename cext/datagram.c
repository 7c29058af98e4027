/* The datagram models (--transport udp): a placeholder until the loops land. */
#include <errno.h>

#include "errors.h"
#include "server.h"

int al_run_datagram_iterative(struct al_server *srv, struct al_error *err)
{
    (void)srv;
    al_error_set(err, "recvfrom", "udp", EPROTONOSUPPORT);
    return AL_ERR;
}

int al_run_datagram_event(struct al_server *srv, struct al_error *err)
{
    return al_run_datagram_iterative(srv, err);
}
