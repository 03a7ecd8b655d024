import { describe, expect, it } from 'vitest';
import { chooseMigrationNetwork, hasMigrationNetwork } from '../../domain/migration-network.ts';

const src = { name: 'h1', address: '10.0.0.1', migrationAddress: '192.168.9.1' };
const dst = { name: 'h2', address: '10.0.0.2', migrationAddress: '192.168.9.2' };

describe('chooseMigrationNetwork', () => {
  it('uses the migration network when both ends have it and it is reachable', () => {
    expect(chooseMigrationNetwork(src, dst, { migration: true, management: true })).toEqual({
      ok: true,
      network: 'migration',
      address: '192.168.9.2',
      warning: null,
    });
  });

  it('falls back to the management address with a warning saying why', () => {
    const unreachable = chooseMigrationNetwork(src, dst, { migration: false, management: true });
    expect(unreachable).toMatchObject({ ok: true, network: 'management', address: '10.0.0.2' });
    expect(unreachable.ok && unreachable.warning).toBe(
      "h1 cannot reach h2's migration address 192.168.9.2; using the management address 10.0.0.2",
    );
    const oneSided = chooseMigrationNetwork(
      src,
      { ...dst, migrationAddress: null },
      { migration: null, management: true },
    );
    expect(oneSided.ok && oneSided.warning).toContain('h2 has no migration network address');
  });

  it('uses the management address silently when neither host has a migration network', () => {
    const plain = chooseMigrationNetwork(
      { ...src, migrationAddress: null },
      { ...dst, migrationAddress: null },
      { migration: null, management: true },
    );
    expect(plain).toEqual({ ok: true, network: 'management', address: '10.0.0.2', warning: null });
  });

  it('fails saying why when nothing is reachable', () => {
    const none = chooseMigrationNetwork(src, dst, { migration: false, management: false });
    expect(none).toEqual({
      ok: false,
      reason:
        "h1 cannot reach h2 on the management address 10.0.0.2, and h1 cannot reach h2's migration address 192.168.9.2",
    });
  });

  it('probes only when both ends have a migration address', () => {
    expect(hasMigrationNetwork(src, dst)).toBe(true);
    expect(hasMigrationNetwork(src, { ...dst, migrationAddress: null })).toBe(false);
  });
});
