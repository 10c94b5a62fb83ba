"""Dev seeds only: the explainer's choice (target subsystem, top z, contributions) for one fault's incident.

Run from the repository: `.venv/bin/python docs/experiments/why-explained.py 120 dgx-01-02/3`
(development seed, the GPU or component the fault targets); replays the scenario with explanations.
"""
import logging, sys, warnings
from datetime import timedelta
import analysis.explain.explainer as ex
from bot.commands.eval import _factory, DEFAULT_FACTORY, replay_scenario, _on_grid
seed, target = int(sys.argv[1]), sys.argv[2]
from analysis.evaluation.protocol import is_report_seed
if is_report_seed(seed):
    sys.exit(f"{seed} is a report seed (analysis/evaluation/protocol.py): use a development seed")
warnings.simplefilter("ignore"); logging.getLogger().setLevel(logging.ERROR)
sc = _factory(DEFAULT_FACTORY)(seed, healthy=False, max_gpus=128)
orig_choose = ex._choose_target
orig_attr = ex.Explainer._attribute
state = {}
orig_adjust = ex._adjust
def adjust(data, slopes):
    if hasattr(data, "index") and not hasattr(data, "columns"):
        state["raw"] = data
    return orig_adjust(data, slopes)
ex._adjust = adjust
def choose(z):
    sub, tgt = orig_choose(z)
    state["z"] = z; state["choice"] = (sub, tgt)
    return sub, tgt
def attr(self, kind, tgt, sample, z):
    out = orig_attr(self, kind, tgt, sample, z)
    state["contrib"] = out
    return out
ex._choose_target = choose
ex.Explainer._attribute = attr
orig_explain = ex.Explainer._explain
def explain(self, incident, frames, graph, baseline):
    state.clear()
    res = orig_explain(self, incident, frames, graph, baseline)
    if target in incident.root_cause.id or any(target == g.key for g in incident.gpus):
        z = state.get("z")
        print(incident.at, incident.root_cause, "choice", state.get("choice"))
        if z is not None: print("  z top:", z.abs().sort_values(ascending=False).head(8).round(2).to_dict(), "signs", z.reindex(z.abs().sort_values(ascending=False).head(8).index).round(2).to_dict())
        print("  contrib:", {k: round(v,3) for k,v in (state.get("contrib") or {}).items()})
        print("  factors:", [f.name for f in res.factors][:4])
        print("  evidence:", [(e.feature, round(e.z,1)) for e in incident.evidence][:6])
        if incident.root_cause.kind not in self.stats_: return res
        med, scale = self.stats_[incident.root_cause.kind]
        tab = self.tables_[incident.root_cause.kind]
        for k in ("sbe", "remap", "temp"):
            print("  ", k, "med", med.get(k), "scale", scale.get(k), "in table", k in tab.columns, "non-null", int(tab[k].notna().sum()) if k in tab.columns else None, "rows", len(tab))
        print("  raw:", {k: round(float(v),2) for k,v in state.get("raw", {}).items() if k in ("sbe","remap","dbe","nvlink","pcie","port_errors","temp","fan")})
    return res
ex.Explainer._explain = explain
cycle = _on_grid(timedelta(minutes=5), sc.step)
replay_scenario(sc, ["graph"], explain=True, cycle=cycle)
