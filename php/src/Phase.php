<?php
// A connection's phases, in the order it goes through them (see Connection).
declare(strict_types=1);

namespace AcceptLoop;

enum Phase
{
    /** The service reads and writes. */
    case SERVING;
    /** The service is done; unsent output is still going out. */
    case FLUSHING;
    /** Our FIN is sent; the client's input is read and dropped until its FIN or the linger time. */
    case LINGERING;
    /** The socket is closed. */
    case CLOSED;
}
