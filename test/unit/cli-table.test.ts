import { describe, expect, it } from 'vitest';
import { table } from '../../cli/table.ts';

describe('table', () => {
  it('aligns columns to the widest cell and blanks nulls', () => {
    expect(
      table(
        ['ID', 'Name'],
        [
          ['1', 'host-1'],
          [22, null],
        ],
      ),
    ).toBe(['ID  Name', '--  ------', '1   host-1', '22'].join('\n'));
  });
});
