"""anomalib's FastFlow, CFlow and CS-Flow flow parts on given Lite feature tensors (peers venv).

anomalib 2.7.0 builds each flow after a backbone it picks (FastFlow: a
ResNet / CaiT / DeiT list; CFlow: any timm name; CS-Flow: torchvision's
EfficientNet-B5, 304 channels hard-coded in its graph). Here the backbone is
left out: every builder takes the feature shapes, (C, H, W) per input, and
the flows, losses, optimisers and maps are anomalib's own code, so the two
sides can be fed identical feature tensors:

- FastFlow: `FastflowModel` built with resnet18 (`pre_trained=False`, never
  run) whose `feature_extractor` is replaced by a pass-through and whose
  `norms` (LayerNorm over (C, H, W), affine) and `fast_flow_blocks`
  (`create_fast_flow_block`: AllInOneBlock, conv subnets 3x3 / 1x1
  alternating, clamp 2) are rebuilt for the given shapes, exactly as its
  __init__ does. Loss `FastflowLoss`; Adam(lr 1e-3, weight decay 1e-5) over
  all parameters (`Fastflow.configure_optimizers`); map
  `AnomalyMapGenerator`, score its maximum (`FastflowModel.forward`).
- CFlow: one `cflow_head` per input (AllInOneBlock x coupling_blocks, dense
  subnets, SOFTPLUS global affine, condition = `positional_encoding_2d`), the
  fiber loop of `Cflow.training_step` (a random permutation of the B*H*W
  fibers, an Adam(lr 1e-4) step per fiber batch of 64, loss
  -logsigmoid(log p / C)) and `CflowModel.forward`'s scoring with its
  `AnomalyMapGenerator` (exp(log p - max over the scored batch): the map of
  an image depends on its batch-mates; score the whole test split at once).
- CS-Flow: `CrossScaleFlow` with its graph rebuilt for C channels instead
  of 304 (`_create_graph` copied with the InputNodes' shapes from the
  given features; ParallelPermute, ParallelGlowCouplingLayer and
  CrossConvolutions are anomalib's), `CsFlowLoss`, Adam(lr 2e-4, betas
  (0.5, 0.9), eps 1e-4, weight decay 1e-5) with gradient norm clipped to 1
  (`Csflow.configure_optimizers`, `trainer_arguments`), score
  `_compute_anomaly_scores`, map `AnomalyMapGenerator` (mode ALL).

Features are NCHW float32 torch tensors, one per input, in the order given.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class PassThrough(nn.Module):
  """Stands in for a backbone: returns the features it is given."""

  def forward(self, features):
    return features


# ---------------------------------------------------------------- FastFlow
def build_fastflow(dims, image_size, flow_steps=8, conv3x3_only=False, hidden_ratio=1.0):
  """anomalib's FastflowModel on features of shapes `dims` [(C, H, W), ...]."""
  from anomalib.models.image.fastflow import torch_model as ff  # pylint: disable=import-outside-toplevel
  model = ff.FastflowModel(input_size=(image_size, image_size), backbone="resnet18",
                           pre_trained=False, flow_steps=flow_steps, conv3x3_only=conv3x3_only,
                           hidden_ratio=hidden_ratio)
  model.feature_extractor = PassThrough()
  model.norms = nn.ModuleList(nn.LayerNorm(list(d), elementwise_affine=True) for d in dims)
  model.fast_flow_blocks = nn.ModuleList(
      ff.create_fast_flow_block(input_dimensions=list(d), conv3x3_only=conv3x3_only,
                                hidden_ratio=hidden_ratio, flow_steps=flow_steps) for d in dims)
  return model


def fastflow_optimizer(model):
  return torch.optim.Adam(model.parameters(), lr=0.001, weight_decay=0.00001)


def fastflow_loss(model, feats):
  from anomalib.models.image.fastflow.loss import FastflowLoss  # pylint: disable=import-outside-toplevel
  model.train()
  hidden, jac = model(feats)
  return FastflowLoss()(hidden, jac), {"logdet": [j.detach() for j in jac],
                                       "z": [h.detach() for h in hidden]}


def fastflow_score(model, feats):
  model.eval()
  with torch.no_grad():
    out = model(feats)
  return out.pred_score.numpy(), out.anomaly_map[:, 0].numpy()


# ---------------------------------------------------------------- CFlow
class CflowFlows(nn.Module):
  """The decoders of anomalib's CflowModel, one `cflow_head` per input."""

  def __init__(self, dims, condition_vector=128, coupling_blocks=8, clamp_alpha=1.9,
               fiber_batch_size=64, permute_soft=False):
    super().__init__()
    from anomalib.models.image.cflow.utils import cflow_head  # pylint: disable=import-outside-toplevel
    self.dims = [tuple(d) for d in dims]
    self.condition_vector = condition_vector
    self.fiber_batch_size = fiber_batch_size
    self.decoders = nn.ModuleList(
        cflow_head(condition_vector=condition_vector, coupling_blocks=coupling_blocks,
                   clamp_alpha=clamp_alpha, n_features=d[0], permute_soft=permute_soft)
        for d in dims)

  def fibers(self, layer, feat):
    """(e_r (BHW, C), c_r (BHW, P)) as Cflow.training_step lays them out."""
    import einops  # pylint: disable=import-outside-toplevel
    from anomalib.models.image.cflow.utils import positional_encoding_2d  # pylint: disable=import-outside-toplevel
    b, _, h, w = feat.shape
    pos = einops.repeat(positional_encoding_2d(self.condition_vector, h, w).unsqueeze(0),
                        "b c h w-> (tile b) c h w", tile=b)
    return (einops.rearrange(feat, "b c h w -> (b h w) c"),
            einops.rearrange(pos, "b c h w -> (b h w) c"))

  def log_prob(self, layer, e_p, c_p):
    from anomalib.models.image.cflow.utils import get_logp  # pylint: disable=import-outside-toplevel
    p_u, log_jac_det = self.decoders[layer](e_p, [c_p])
    return get_logp(e_p.shape[1], p_u, log_jac_det) / e_p.shape[1]


def build_cflow(dims, **kwargs):
  return CflowFlows(dims, **kwargs)


def cflow_optimizer(model, lr=1e-4):
  return torch.optim.Adam(model.decoders.parameters(), lr=lr)


def cflow_full_loss(model, feats):
  """Mean -logsigmoid(log p / C) over every fiber of the batch, per input (no update)."""
  with torch.no_grad():
    out = []
    for layer, feat in enumerate(feats):
      e_r, c_r = model.fibers(layer, feat)
      out.append(float((-F.logsigmoid(model.log_prob(layer, e_r, c_r))).mean()))
  return out


def cflow_train_step(model, opt, feats, record=None):
  """`Cflow.training_step` on one batch of features: the fiber loop; returns its avg_loss.

  `record` (a dict), if given, gets the first fiber batch's indices and each
  fiber batch's loss (before its update) per input.
  """
  total = torch.zeros([1], dtype=torch.float64)
  for layer, feat in enumerate(feats):
    e_r, c_r = model.fibers(layer, feat.detach())
    n = e_r.shape[0]
    perm = torch.randperm(n)
    batches = n // model.fiber_batch_size
    if batches <= 0:
      raise ValueError("fewer fibers than fiber_batch_size")
    losses = []
    for k in range(batches):
      opt.zero_grad()
      stop = (k + 1) * model.fiber_batch_size if k < batches - 1 else n
      idx = torch.arange(k * model.fiber_batch_size, stop)
      loss = -F.logsigmoid(model.log_prob(layer, e_r[perm[idx]], c_r[perm[idx]]))
      loss.mean().backward()
      opt.step()
      total += loss.sum().detach()
      losses.append(float(loss.mean()))
    if record is not None:
      record.setdefault("fiber_perm", []).append(perm.numpy())
      record.setdefault("fiber_losses", []).append(losses)
  return float(total)


def cflow_score(model, feats, image_size):
  """CflowModel.forward's distribution and its AnomalyMapGenerator, over all of `feats` at once."""
  from anomalib.models.image.cflow.anomaly_map import AnomalyMapGenerator  # pylint: disable=import-outside-toplevel
  dist, hs, ws = [], [], []
  with torch.no_grad():
    for layer, feat in enumerate(feats):
      e_r, c_r = model.fibers(layer, feat)
      parts = [model.log_prob(layer, e_r[i:i + 4096], c_r[i:i + 4096])
               for i in range(0, e_r.shape[0], 4096)]
      dist.append(torch.cat(parts))
      hs.append(feat.shape[2])
      ws.append(feat.shape[3])
  gen = AnomalyMapGenerator(pool_layers=[str(i) for i in range(len(feats))])
  amap = gen(distribution=dist, height=hs, width=ws, image_size=(image_size, image_size))
  return torch.amax(amap, dim=(-2, -1)).numpy(), amap.numpy()


# ---------------------------------------------------------------- CS-Flow
def build_csflow(dims, hidden=1024, n_coupling_blocks=4, clamp=3.0):
  """anomalib's CrossScaleFlow with its graph built for `dims` (3 scales) instead of 304 x /32."""
  from FrEIA.framework import GraphINN, InputNode, Node, OutputNode  # pylint: disable=import-outside-toplevel
  from anomalib.models.image.csflow import torch_model as cs  # pylint: disable=import-outside-toplevel
  if len(dims) != 3:
    raise ValueError(f"CS-Flow joins exactly 3 scales; got {len(dims)}")
  for (c0, h0, w0), (c1, h1, w1) in zip(dims, dims[1:]):
    if c0 != c1 or h0 != 2 * h1 or w0 != 2 * w1:
      raise ValueError(f"CS-Flow's cross convolutions need each scale half the previous: {dims}")

  class LiteCrossScaleFlow(cs.CrossScaleFlow):
    def _create_graph(self):  # anomalib's, with the InputNodes' shapes from `dims`.
      nodes = [InputNode(*dims[0], name="input"), InputNode(*dims[1], name="input2"),
               InputNode(*dims[2], name="input3")]
      for block in range(self.n_coupling_blocks):
        if block == 0:
          to_permute = [nodes[-3].out0, nodes[-2].out0, nodes[-1].out0]
        else:
          to_permute = [nodes[-1].out0, nodes[-1].out1, nodes[-1].out2]
        nodes.append(Node(inputs=to_permute, module_type=cs.ParallelPermute,
                          module_args={"seed": block}, name=f"permute_{block}"))
        nodes.append(Node(inputs=[nodes[-1].out0, nodes[-1].out1, nodes[-1].out2],
                          module_type=cs.ParallelGlowCouplingLayer,
                          module_args={"clamp": self.clamp, "subnet_args": {
                              "channels_hidden": self.cross_conv_hidden_channels,
                              "kernel_size": self.kernel_sizes[block]}},
                          name=f"fc1_{block}"))
      nodes += [OutputNode([nodes[-1].out0], name="output_end0"),
                OutputNode([nodes[-1].out1], name="output_end1"),
                OutputNode([nodes[-1].out2], name="output_end2")]
      return GraphINN(nodes)

  return LiteCrossScaleFlow(input_dims=(3, 0, 0), n_coupling_blocks=n_coupling_blocks,
                            clamp=clamp, cross_conv_hidden_channels=hidden)


def csflow_optimizer(model):
  return torch.optim.Adam(model.parameters(), lr=2e-4, eps=1e-04, weight_decay=1e-5,
                          betas=(0.5, 0.9))


def csflow_loss(model, feats):
  """anomalib's CsFlowLoss as shipped (its log-det is one number summed over the batch)."""
  from anomalib.models.image.csflow.loss import CsFlowLoss  # pylint: disable=import-outside-toplevel
  model.train()
  z, jac = model(list(feats))
  return CsFlowLoss()(z, jac), {"logdet_batch_sum": jac.detach(), "z": [t.detach() for t in z]}


def csflow_reference_loss(model, feats):
  """The reference's get_loss (marco-rudolph/cs-flow utils.py): each example's own log-det.

  anomalib's graph returns one log-det for the whole batch, so each example
  is run alone to get its own; the z are the batch's.
  """
  with torch.no_grad():
    z, _ = model(list(feats))
    jac = torch.stack([model([f[i:i + 1] for f in feats])[1] for i in range(feats[0].shape[0])])
    flat = torch.cat([t.reshape(t.shape[0], -1) for t in z], dim=1)
    return float(torch.mean(0.5 * torch.sum(flat**2, dim=1) - jac) / flat.shape[1]), jac.numpy()


def csflow_score(model, feats, image_size):
  from anomalib.models.image.csflow.anomaly_map import AnomalyMapGenerator, AnomalyMapMode  # pylint: disable=import-outside-toplevel
  from anomalib.models.image.csflow.torch_model import CsFlowModel  # pylint: disable=import-outside-toplevel
  model.eval()
  with torch.no_grad():
    z, _ = model(list(feats))
    scores = CsFlowModel._compute_anomaly_scores(z)  # pylint: disable=protected-access
    maps = AnomalyMapGenerator(input_dims=(3, image_size, image_size), mode=AnomalyMapMode.ALL)(z)
  return scores.numpy(), maps[:, 0].numpy()


def csflow_clip(model):
  torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)


def hard_permutations(module) -> dict[str, np.ndarray]:
  """{name: perm} of every AllInOneBlock and ParallelPermute: (C,) int32 indices, y[i] = u[perm[i]]
  (hard), or the (C, C) float32 rotation R, y = R u (soft: w_perm, permute_soft=True)."""
  from anomalib.models.components.flow import AllInOneBlock  # pylint: disable=import-outside-toplevel
  from anomalib.models.image.csflow.torch_model import ParallelPermute  # pylint: disable=import-outside-toplevel
  out = {}
  for name, m in module.named_modules():
    if isinstance(m, AllInOneBlock) and m.w_perm is not None:
      w = m.w_perm.detach().reshape(m.w_perm.shape[0], m.w_perm.shape[1]).numpy()
      is_hard = np.array_equal(np.sort(w.ravel())[-w.shape[0]:], np.ones(w.shape[0])) and (
          np.count_nonzero(w) == w.shape[0])
      out[name] = np.argmax(w, axis=1).astype(np.int32) if is_hard else w.astype(np.float32)
    elif isinstance(m, ParallelPermute):
      for i, p in enumerate(m.perm):
        out[f"{name}.scale{i}"] = p.numpy().astype(np.int32)
  return out
