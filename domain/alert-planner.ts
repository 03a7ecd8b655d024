import {
  comparatorOf,
  DEFAULT_ALERT_MARGIN,
  DEFAULT_COOLDOWN_PERIODS,
  fires,
  safeLine,
  type AlertMetric,
} from './alert-rule.ts';

/**
 * The load planner of migration-alert rules: which guests leave which alerted host, and where to. Pure, so the
 * alertCycle workflow, `POST /v1/migration-alerts/:id/plan` and the offline `vmctl plan --snapshot` give the
 * same answer for the same snapshot.
 */

export interface PlannerRule {
  metric: AlertMetric;
  threshold: number;
  periodS: number;
  /** Fraction of the threshold kept as headroom (default DEFAULT_ALERT_MARGIN). */
  margin?: number;
  /** A guest moved by any rule within this many seconds stays (default DEFAULT_COOLDOWN_PERIODS periods). */
  cooldownS?: number;
  /** A guest does not go back to the host it left within this many seconds (default RETURN_BLOCK_S). */
  returnBlockS?: number;
  /** Host ids watched; empty or absent: every host. */
  sourceHosts?: string[];
  /** Host ids that may receive guests; empty or absent: every host. */
  targetHosts?: string[];
  /** Guest ids that may move; empty or absent: every guest. */
  sourceGuests?: string[];
}

export interface PlannerHost {
  id: string;
  name: string;
  cpus: number;
  memoryBytes: number;
  /** The rule's metric over the last period (percent for cpu, bytes for memory); null when there is no data. */
  current: number | null;
  /**
   * Its metric's last period means before that one, oldest first. Given, they say how steady it is as a target;
   * absent, its guests' histories do (then every guest's usage must be read, not only the alerted hosts').
   */
  history?: number[];
  /** False for a host that takes no new guests (disabled, offline, in maintenance); default true. */
  acceptsGuests?: boolean;
  /**
   * A migration to or from it is running or ended within the last period, so its mean does not show it yet:
   * it neither fires nor receives this cycle (else one overload would move a guest every cycle until the
   * mean caught up).
   */
  settling?: boolean;
}

export interface PlannerGuest {
  id: string;
  name: string;
  hostId: string;
  vcpus: number;
  memoryMb: number;
  /** The guest's own cpu percent of its vCPUs over the last period; null when there is no data. */
  usage: number | null;
  /** Its last period means, oldest first. */
  history: number[];
  /** ISO time of its last move by any rule, or null. */
  lastMigratedAt: string | null;
  /** Hosts rules took it off, with when (ISO), within the return block at least. */
  leftHosts?: { host: string; at: string }[];
  /** A migration of it is in flight. */
  migrating?: boolean;
}

export interface AlertPlanInput {
  now: string;
  rule: PlannerRule;
  hosts: PlannerHost[];
  guests: PlannerGuest[];
}

export interface PlannedMove {
  guest: string;
  from: string;
  to: string;
  /** What the guest weighs on its source (cpu: percent of the source's cpus; memory: bytes). */
  score: number;
  /** What it weighs on the target (cpu rescaled to the target's cpus). */
  targetScore: number;
  /** The target's value before this move, with the moves planned before it. */
  targetCurrent: number;
}

export interface UnplacedGuest {
  guest: string;
  reasons: string[];
}

export interface AlertedHost {
  host: string;
  value: number;
  /** Its value once the planned moves are done. */
  after: number;
  /** The planned moves bring it to the safe side of threshold and margin. */
  relieved: boolean;
}

export interface AlertPlan {
  moves: PlannedMove[];
  unplaced: UnplacedGuest[];
  /** Every host with data: its value after the planned moves, by host id. */
  hostAfter: Record<string, number>;
  alerted: AlertedHost[];
  /** Watched hosts with no value: they cannot fire. */
  noData: string[];
  /** Watched hosts past the threshold that were left alone because they are settling. */
  settling: string[];
}

/** How many failing targets a reason list names before it counts the rest. */
export const MAX_REASONS_PER_GUEST = 20;

/**
 * Once a fitting target is found, this many more are looked at for a better one, then the best of them wins:
 * targets come least loaded first, so the winner is among the least loaded, and a 10,000-host fleet is not
 * scanned in full for every guest.
 */
export const TARGETS_AFTER_FIRST_FIT = 64;

/** A guest never returns within an hour to a host a rule took it off: that would be a ping-pong. */
export const RETURN_BLOCK_S = 3600;

const MIB = 1024 * 1024;

const fixed = (n: number) => n.toFixed(6);

/** Standard deviation of the values and, when given, one more. */
function stdev(values: number[], extra: number | null): number {
  const n = values.length + (extra === null ? 0 : 1);
  if (n < 2) return 0;
  let sum = extra ?? 0;
  for (const v of values) sum += v;
  const mean = sum / n;
  let squares = extra === null ? 0 : (extra - mean) ** 2;
  for (const v of values) squares += (v - mean) ** 2;
  return Math.sqrt(squares / n);
}

interface Target {
  host: PlannerHost;
  load: number;
  memoryUsed: number;
  /** How much its cpu swings (stdev, in its percent): a steady target is preferred. */
  swing: number;
  /** What no planned move can bring its rank under: load and swing only grow as guests are planned onto it. */
  floor: number;
}

/**
 * The watched hosts (the rule's source hosts, or all) whose value crosses the threshold, strictly, as the seed
 * compares; a settling one among them fires but does not act this cycle.
 */
export function firingHosts(
  rule: Pick<PlannerRule, 'metric' | 'threshold' | 'sourceHosts'>,
  hosts: readonly PlannerHost[],
): PlannerHost[] {
  const watched = rule.sourceHosts && rule.sourceHosts.length > 0 ? new Set(rule.sourceHosts) : null;
  return hosts.filter(
    (h) =>
      (!watched || watched.has(h.id)) && h.current !== null && fires(rule.metric, h.current, rule.threshold),
  );
}

/**
 * The hosts that must shed load now (firing, not settling): only their guests' usage can change the plan, and
 * without one no guest's can.
 */
export function hostsToRelieve(
  rule: Pick<PlannerRule, 'metric' | 'threshold' | 'sourceHosts'>,
  hosts: readonly PlannerHost[],
): PlannerHost[] {
  return firingHosts(rule, hosts).filter((h) => !h.settling);
}

export function planAlertMoves(input: AlertPlanInput): AlertPlan {
  const { rule } = input;
  const isCpu = comparatorOf(rule.metric) === 'gt';
  const margin = rule.margin ?? DEFAULT_ALERT_MARGIN;
  const line = safeLine(rule.metric, rule.threshold, margin);
  const cooldownMs = (rule.cooldownS ?? DEFAULT_COOLDOWN_PERIODS * rule.periodS) * 1000;
  const now = Date.parse(input.now);
  const only = (ids: string[] | undefined) => (ids && ids.length > 0 ? new Set(ids) : null);
  const sourceHosts = only(rule.sourceHosts);
  const targetHosts = only(rule.targetHosts);
  const sourceGuests = only(rule.sourceGuests);

  const guestsByHost = new Map<string, PlannerGuest[]>();
  for (const g of input.guests) {
    const list = guestsByHost.get(g.hostId) ?? [];
    list.push(g);
    guestsByHost.set(g.hostId, list);
  }

  /** cpu: the guest's share of a host's cpus; memory: its bytes. */
  const scoreOn = (g: PlannerGuest, h: PlannerHost) =>
    isCpu ? ((g.usage ?? 0) * g.vcpus) / h.cpus : g.memoryMb * MIB;
  const spread = new Map<string, number>();
  const stdevOf = (g: PlannerGuest) => {
    let value = spread.get(g.id);
    if (value === undefined) {
      value = stdev(g.history, g.usage);
      spread.set(g.id, value);
    }
    return value;
  };
  const swingOn = (g: PlannerGuest, h: PlannerHost) => (isCpu ? (stdevOf(g) * g.vcpus) / h.cpus : 0);
  /** A target's own spread when its history is known, else the sum of its guests' spreads. */
  const targetSwing = (h: PlannerHost, guests: readonly PlannerGuest[]) => {
    if (!isCpu) return 0;
    if (h.history !== undefined) return stdev(h.history, h.current);
    return guests.reduce((sum, g) => sum + swingOn(g, h), 0);
  };
  const returnBlockMs = Math.max(rule.returnBlockS ?? RETURN_BLOCK_S, cooldownMs / 1000) * 1000;
  /** When the guest left the host within the return block, or undefined. */
  const leftRecently = (g: PlannerGuest, hostId: string) =>
    g.leftHosts?.find((left) => left.host === hostId && now - Date.parse(left.at) <= returnBlockMs)?.at;

  const load = new Map<string, number>();
  for (const h of input.hosts) if (h.current !== null) load.set(h.id, h.current);
  const hostName = new Map(input.hosts.map((h) => [h.id, h.name]));

  const watched = input.hosts.filter((h) => !sourceHosts || sourceHosts.has(h.id));
  const noData = watched.filter((h) => h.current === null).map((h) => h.id);
  const excess = (h: PlannerHost) => (isCpu ? h.current! - line : line - h.current!);
  const firing = firingHosts(rule, input.hosts);
  const settling = firing.filter((h) => h.settling).map((h) => h.id);
  const alertedHosts = firing
    .filter((h) => !h.settling)
    .sort((a, b) => excess(a) - excess(b) || a.id.localeCompare(b.id));
  /** Hosts guests leave in this plan: none of them receives one, or the plan could swap guests around. */
  const sources = new Set<string>();
  const movedGuests = new Set<string>();

  // Least loaded (and steadiest) first, so the reasons name the closest candidates, the scan can stop early,
  // and ties break the same way every run. A
  // host past the threshold stays a candidate, as in Cloudpods: its own value refuses it, with the reason.
  const targets: Target[] = input.hosts
    .filter((h) => h.current !== null && h.acceptsGuests !== false && (!targetHosts || targetHosts.has(h.id)))
    .map((h) => {
      const guests = guestsByHost.get(h.id) ?? [];
      return {
        host: h,
        load: h.current!,
        memoryUsed: guests.reduce((sum, g) => sum + g.memoryMb * MIB, 0),
        swing: targetSwing(h, guests),
      };
    })
    .map((t) => ({ ...t, floor: isCpu ? t.load + t.swing : -t.load }))
    .sort((a, b) => a.floor - b.floor || a.host.id.localeCompare(b.host.id));

  const moves: PlannedMove[] = [];
  const unplaced: UnplacedGuest[] = [];
  const alerted: AlertedHost[] = [];

  /**
   * The best target for the guest, or why each candidate is refused. Targets come least loaded first and only
   * fill up as moves are planned, so once a target's own value cannot beat the best found, none after it can:
   * the scan stops there. Reasons are written out only when kept, and only a scan that found nothing keeps them.
   */
  const findTarget = (g: PlannerGuest, source: PlannerHost): { target: Target } | { reasons: string[] } => {
    let best: { target: Target; rank: number } | null = null;
    const reasons: string[] = [];
    let unnamed = 0;
    const refuse = (reason: () => string) => {
      if (best) return;
      if (reasons.length < MAX_REASONS_PER_GUEST) reasons.push(reason());
      else unnamed += 1;
    };
    const guestBytes = g.memoryMb * MIB;
    let afterFit = 0;
    for (const t of targets) {
      if (
        best &&
        (afterFit++ >= TARGETS_AFTER_FIRST_FIT || (isCpu ? t.floor : guestBytes + t.floor) >= best.rank)
      ) {
        break;
      }
      if (t.host.id === source.id) continue;
      const name = t.host.name;
      if (t.host.settling) {
        refuse(() => `host:${name}: a migration to or from it is recent, its metrics do not show it yet`);
        continue;
      }
      if (sources.has(t.host.id)) {
        refuse(() => `host:${name}: guests leave it in this plan`);
        continue;
      }
      const leftAt = leftRecently(g, t.host.id);
      if (leftAt !== undefined) {
        refuse(() => `host:${name}: guest:${g.name} left it at ${leftAt}, within ${returnBlockMs / 1000}s`);
        continue;
      }
      if (t.memoryUsed + guestBytes > t.host.memoryBytes) {
        refuse(
          () =>
            `host:${name}:memory_used(${t.memoryUsed}) + guest:${g.name}:memory(${guestBytes}) > memory(${t.host.memoryBytes})`,
        );
        continue;
      }
      const score = scoreOn(g, t.host);
      const after = isCpu ? t.load + score : t.load - score;
      const head = () =>
        `host:${name}:current(${fixed(t.load)}) ${isCpu ? '+' : '-'} guest:${g.name}:score(${fixed(score)}) ${isCpu ? '>=' : '<='} threshold(${fixed(rule.threshold)})`;
      if (isCpu ? after >= rule.threshold : after <= rule.threshold) {
        refuse(head);
        continue;
      }
      if (isCpu ? after >= line : after <= line) {
        refuse(() => `${head()} - margin(${fixed(Math.abs(rule.threshold - line))})`);
        continue;
      }
      const rank = isCpu ? after + t.swing : -after;
      if (!best || rank < best.rank) best = { target: t, rank };
    }
    if (best) return { target: best.target };
    if (unnamed > 0) reasons.push(`and ${unnamed} more hosts`);
    if (reasons.length === 0) reasons.push('no target host: none other has data and passes the rule filter');
    return { reasons };
  };

  /** Plans the move and returns how to take it back. */
  const place = (g: PlannerGuest, source: PlannerHost, target: Target): (() => void) => {
    const before = { load: target.load, memoryUsed: target.memoryUsed, swing: target.swing };
    const sourceBefore = load.get(source.id)!;
    const wasSource = sources.has(source.id);
    sources.add(source.id);
    movedGuests.add(g.id);
    const score = scoreOn(g, source);
    const targetScore = scoreOn(g, target.host);
    moves.push({
      guest: g.id,
      from: source.id,
      to: target.host.id,
      score,
      targetScore,
      targetCurrent: target.load,
    });
    load.set(source.id, load.get(source.id)! + (isCpu ? -score : score));
    target.load += isCpu ? targetScore : -targetScore;
    target.memoryUsed += g.memoryMb * MIB;
    target.swing += swingOn(g, target.host);
    load.set(target.host.id, target.load);
    return () => {
      Object.assign(target, before);
      load.set(target.host.id, before.load);
      load.set(source.id, sourceBefore);
      if (!wasSource) sources.delete(source.id);
      movedGuests.delete(g.id);
      moves.splice(
        moves.findIndex((m) => m.guest === g.id),
        1,
      );
    };
  };

  /** May the plan move this guest at all (besides where to)? Null if so, else why not. */
  const whyStays = (g: PlannerGuest): string | null => {
    if (g.migrating) return 'already migrating';
    if (g.lastMigratedAt !== null && now - Date.parse(g.lastMigratedAt) < cooldownMs) {
      return `moved at ${g.lastMigratedAt}, within the cool-down of ${cooldownMs / 1000}s`;
    }
    if (isCpu && g.usage === null) return 'no cpu usage data';
    return null;
  };

  for (const source of alertedHosts) {
    const value = source.current!;
    const need = isCpu ? value - line : line - value;
    const candidates: PlannerGuest[] = [];
    const excluded: UnplacedGuest[] = [];
    for (const g of guestsByHost.get(source.id) ?? []) {
      if (sourceGuests && !sourceGuests.has(g.id)) continue;
      const why = whyStays(g);
      if (why !== null) excluded.push({ guest: g.id, reasons: [why] });
      else candidates.push(g);
    }
    // Steady load first: a guest whose usage swings relieves the host less reliably than its mean says.
    const reliable = (g: PlannerGuest) => scoreOn(g, source) - swingOn(g, source);
    candidates.sort((a, b) => reliable(b) - reliable(a) || a.id.localeCompare(b.id));

    const failed = new Map<string, string[]>();
    const firstMove = moves.length;
    const undo: (() => void)[] = [];
    const tryPlace = (g: PlannerGuest): boolean => {
      if (failed.has(g.id)) return false;
      const found = findTarget(g, source);
      if ('target' in found) {
        undo.push(place(g, source, found.target));
        return true;
      }
      failed.set(g.id, found.reasons);
      return false;
    };

    // One guest is the fewest: the steadiest that is enough on its own and fits somewhere.
    const enoughAlone = candidates
      .filter((g) => scoreOn(g, source) > need)
      .sort((a, b) => swingOn(a, source) - swingOn(b, source) || scoreOn(a, source) - scoreOn(b, source));
    let moved = false;
    for (const g of enoughAlone) if ((moved = tryPlace(g))) break;
    if (!moved) {
      // Else the heaviest first, skipping any that fits nowhere, so several smaller guests can do what a
      // large one cannot.
      let relieved = 0;
      for (const g of candidates) {
        if (relieved > need) break;
        if (tryPlace(g)) relieved += scoreOn(g, source);
      }
    }
    let after = load.get(source.id)!;
    if (fires(rule.metric, after, rule.threshold) && undo.length > 0) {
      // Moves that leave the host past the threshold change nothing a rule is for: they only churn. None go.
      const futile = moves.slice(firstMove);
      for (const back of undo.reverse()) back();
      after = load.get(source.id)!;
      for (const m of futile) {
        const target = hostName.get(m.to) ?? m.to;
        failed.set(m.guest, [
          `would go to host:${target}, but host:${source.name} stays past the threshold with every move that fits: none is made`,
        ]);
      }
    }
    const isRelieved = isCpu ? after < line : after > line;
    for (const [guest, reasons] of failed) unplaced.push({ guest, reasons });
    if (!isRelieved) unplaced.push(...excluded);
    alerted.push({ host: source.id, value, after, relieved: isRelieved });
  }

  const hostAfter: Record<string, number> = {};
  for (const [id, value] of load) hostAfter[id] = value;
  return { moves, unplaced, hostAfter, alerted, noData, settling };
}
