/* The handler API's side inside the core (the API itself: acceptloop.h). */
#ifndef AL_HANDLER_H
#define AL_HANDLER_H

#include "conn.h"

/* The service table that calls cfg->handler, named like the service it replaces. */
const struct al_service_ops *al_handler_service(const struct al_config *cfg);

#endif /* AL_HANDLER_H */
