<?php
// What one service answers to one datagram, with --transport udp (docs/protocol.md's datagram
// services). Stateless: every datagram is answered on its own, whoever sent it and whatever
// came before, so one object serves every client.
declare(strict_types=1);

namespace AcceptLoop;

abstract class DatagramService
{
    /** The --service's datagram class (Args lets through only the services that have one). */
    public static function create(Config $config): self
    {
        return match ($config->service) {
            'echo' => new EchoDatagram(),
            'discard' => new DiscardDatagram(),
            'chargen' => new ChargenDatagram(),
            'daytime' => new DaytimeDatagram($config->daytimeEpoch),
        };
    }

    /** The name the log uses. */
    abstract public function name(): string;

    /** The one datagram to send back for $data, or null: no answer. */
    abstract public function answer(string $data): ?string;
}
