import type { SyntaxNode } from '@lezer/common';
import { parser } from '@prometheus-io/lezer-promql';

/** Stands in for Grafana's `$__rate_interval` while parsing: a duration no hand-written query uses. */
export const RATE_INTERVAL_SENTINEL = '7777s';
/** Stands in for Grafana's `$__range` (instant queries over the dashboard's range); `$__range_s` parses as 8888. */
export const RANGE_SENTINEL = '8888s';

export interface SelectorUse {
  readonly name: string;
  readonly matchers: ReadonlyMap<string, { op: string; value: string }>;
  /** Range of the enclosing matrix selector, if any. */
  readonly range?: string;
  /** Function applied to the enclosing matrix selector (rate, increase, avg_over_time, ...). */
  readonly rangeFunction?: string;
  /** The innermost topk/bottomk/limitk the selector is read through, if any: what bounds the series a query returns. */
  readonly boundedBy?: string;
}

export interface Analysis {
  readonly errors: string[];
  readonly selectors: SelectorUse[];
}

function childOf(node: SyntaxNode, name: string): SyntaxNode | null {
  for (let c = node.firstChild; c; c = c.nextSibling) if (c.name === name) return c;
  return null;
}

/** Parses a PromQL expression (Grafana variables substituted for parsing) and lists its selectors. */
export function analyze(exprWithVars: string): Analysis {
  const expr = exprWithVars.replace(/\$__rate_interval|\$\{__rate_interval\}/g, RATE_INTERVAL_SENTINEL).replace(/\$__range_s|\$\{__range_s\}/g, '8888').replace(/\$__range|\$\{__range\}/g, RANGE_SENTINEL);
  const tree = parser.parse(expr);
  const errors: string[] = [];
  const selectors: SelectorUse[] = [];
  const text = (n: SyntaxNode) => expr.slice(n.from, n.to);
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) errors.push(`syntax error at ${ref.from}: ...${expr.slice(Math.max(0, ref.from - 20), ref.from + 20)}...`);
      if (ref.name !== 'VectorSelector') return;
      const node = ref.node;
      const ident = childOf(node, 'Identifier');
      const matchers = new Map<string, { op: string; value: string }>();
      const lm = childOf(node, 'LabelMatchers');
      for (let m = lm?.firstChild ?? null; m; m = m.nextSibling) {
        if (m.name !== 'UnquotedLabelMatcher') continue;
        const label = childOf(m, 'LabelName');
        const op = childOf(m, 'MatchOp');
        const value = childOf(m, 'StringLiteral');
        if (label && op && value) matchers.set(text(label), { op: text(op), value: JSON.parse(text(value).replace(/^'|'$/g, '"')) as string });
      }
      let range: string | undefined;
      let rangeFunction: string | undefined;
      if (node.parent?.name === 'MatrixSelector') {
        const ms = node.parent;
        const dur = ms.lastChild;
        range = dur ? text(dur) : undefined;
        let up: SyntaxNode | null = ms.parent;
        while (up && (up.name === 'OffsetExpr' || up.name === 'ParenExpr')) up = up.parent;
        if (up?.name === 'FunctionCallBody' && up.parent?.name === 'FunctionCall') {
          const id = childOf(up.parent, 'FunctionIdentifier');
          rangeFunction = id ? text(id) : undefined;
        }
      }
      let boundedBy: string | undefined;
      for (let up: SyntaxNode | null = node.parent; up && !boundedBy; up = up.parent) {
        const op = up.name === 'AggregateExpr' ? childOf(up, 'AggregateOp') : null;
        if (op && /^(topk|bottomk|limitk)$/.test(text(op))) boundedBy = text(op);
      }
      selectors.push({ name: ident ? text(ident) : '', matchers, range, rangeFunction, boundedBy });
    },
  });
  return { errors, selectors };
}

/** Functions that may take a counter's range vector. */
// count_over_time counts samples (does a series exist in the window), never reads a counter's value.
export const COUNTER_FUNCTIONS = new Set(['rate', 'increase', 'irate', 'count_over_time']);
