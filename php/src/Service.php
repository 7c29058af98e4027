<?php
// What one service does with a connection (Python: connection.Service and SERVICES).
// The defaults are "do nothing"; each service overrides what its row of the design's table says.
declare(strict_types=1);

namespace AcceptLoop;

abstract class Service
{
    final public function __construct(protected readonly Connection $conn, protected readonly Config $config)
    {
    }

    /** The --service's class (Args lets through only Protocol::SERVICES' names, each one here). */
    public static function create(Connection $conn, Config $config): self
    {
        return match ($config->service) {
            'echo' => new EchoService($conn, $config),
            'discard' => new DiscardService($conn, $config),
            'chargen' => new ChargenService($conn, $config),
            'daytime' => new DaytimeService($conn, $config),
            'message' => new MessageService($conn, $config),
        };
    }

    /** The name the log uses. */
    abstract public function name(): string;

    /** It writes without being asked (chargen): the connection wants writability while serving. */
    public function produces(): bool
    {
        return false;
    }

    public function onOpen(float $now): void
    {
    }

    public function onData(string $data, float $now): void
    {
    }

    public function onEof(float $now): void
    {
        $this->conn->finish();
    }

    /** With nothing waiting to be sent: offer more (a service that produces()). */
    public function refill(float $now): void
    {
    }
}
