<?php
// RFC 863: read and drop everything; close after the client's FIN.
declare(strict_types=1);

namespace AcceptLoop;

final class DiscardService extends Service
{
    public function name(): string
    {
        return 'discard';
    }
}
