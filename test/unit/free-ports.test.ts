import { describe, expect, it } from 'vitest';
import { freePorts, parsePortRange, pickRangeBelow } from '../../scripts/services/ports.ts';

describe('ports picked for servers', () => {
  it('are picked below the kernel ephemeral range, where no outgoing connection can take them', () => {
    expect(pickRangeBelow({ low: 32768, high: 60999 })).toEqual({ low: 16384, high: 32767 });
  });

  it('are left to the kernel when the ephemeral range leaves too little room below it', () => {
    expect(pickRangeBelow({ low: 17000, high: 60999 })).toBeUndefined();
    expect(pickRangeBelow({ low: 1024, high: 65535 })).toBeUndefined();
  });

  it('reads the range as /proc/sys/net/ipv4/ip_local_port_range prints it', () => {
    expect(parsePortRange('32768\t60999\n')).toEqual({ low: 32768, high: 60999 });
    expect(parsePortRange('')).toBeUndefined();
    expect(parsePortRange('60999 32768')).toBeUndefined();
  });

  it('are distinct within one call and free when returned', async () => {
    const ports = await freePorts(20);
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) expect(port).toBeLessThan(32768);
  });
});
