"""Result tables: the honest vs paper_repro columns of a benchmark grid."""

from ganad_jax import result_tables


def _row(seed, honest, best, last):
  return {"method": "ganomaly", "class": "0", "seed": seed, "wall_time_s": 1.0,
          "metrics": {"auroc": honest, "auprc": 0.5},
          "paper_repro": {"auroc": best, "auroc_last": last, "best_step": 8, "per_epoch": []}}


def test_protocol_rows_put_both_protocols_side_by_side():
  rows = [_row(0, 0.70, 0.80, 0.75), _row(1, 0.60, 0.90, 0.65),
          {"method": "ae", "class": "0", "seed": 0, "wall_time_s": 1.0,
           "metrics": {"auroc": 0.5}, "paper_repro": None}]
  table = result_tables.benchmark_summary(result_tables.protocol_rows(rows))
  assert list(table) == ["ganomaly honest", "ganomaly paper_repro", "ganomaly paper_repro last"]
  means = {m: round(table[m]["overall"]["auroc"]["mean"], 6) for m in table}
  assert means == {"ganomaly honest": 0.65, "ganomaly paper_repro": 0.85,
                   "ganomaly paper_repro last": 0.7}
  text = result_tables.benchmark_markdown(table, "auroc")
  assert "| ganomaly honest | ganomaly paper_repro |" in text and "0.850 ± 0.050" in text
