<?php
// One server's settings, as the contract's options give them (Python: contract.ServerConfig).
declare(strict_types=1);

namespace AcceptLoop;

final class Config
{
    public function __construct(
        public readonly string $service,
        public readonly string $model,
        public readonly string $host,
        public readonly int $port,
        public readonly int $backlog,
        public readonly float $grace,
        public readonly int $maxConns,
        public readonly float $idleTimeout,
        public readonly bool $ipv6Only,
        /** From ACCEPTLOOP_DAYTIME_EPOCH; null: use the clock. */
        public readonly ?int $daytimeEpoch,
        /** --transport: 'tcp' (streams) or 'udp' (datagrams). */
        public readonly string $transport = 'tcp',
        /** Event loops on the port (Workers), SO_REUSEPORT when more than one. */
        public readonly int $workers = 1,
    ) {
    }
}
