<?php
// A bad, unknown or out-of-range argument: usage and this one line on stderr, exit 2.
declare(strict_types=1);

namespace AcceptLoop;

final class UsageError extends \RuntimeException
{
}
