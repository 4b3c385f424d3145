"""The panel's "Rank base models for my data" (issue 18): ``/deepvre/api/rankings``.

``POST rankings`` ``{"data": FOLDER, "cluster": "local"}`` starts a job that runs
:func:`deepvre.science.ranking.rank` on a preprocessed data set of the workspace, in a thread of this
server, on a Dask cluster made with the site's terms (as Preprocess does); ``GET rankings/ID`` says
its stage and progress, then the ranking (or the error). ``GET rankings`` lists the jobs: the latest
finished one orders the fine-tune form's base-model choice. The catalog is the user's own
(``connect()``, with this server's marketplace token): a ranking shows only what the user may see.
"""

import threading
import time

from . import backends, paths
from .handlers import Base, api
from .jobs import PreprocessJobs


class RankingJobs(PreprocessJobs):
    """Ranking jobs of this server, by id: ``starting``, ``running`` (stage, done of total), then
    ``done`` (the ranking) or ``failed`` (the error). Like preprocessing jobs, they run in a thread
    of the server on a cluster made with the site's terms (the listing and views are theirs)."""

    def start(self, data, cluster="local"):
        return self._launch("ranking", cluster, {"data": data, "stage": "starting the cluster", "result": None})

    def _run(self, job):
        from deepvre.science import ranking

        def progress(stage, done, total):
            job.update(state="running", stage=stage, progress={"done": done, "total": total})

        try:
            with backends.open_cluster(job["cluster"], self.dask, self.slurm) as (client, _link):
                result = ranking.rank(job["data"], client=client, progress=progress)
            job.update(state="done", result=ranking.as_json(result))
        except Exception as err:  # noqa: BLE001  (the panel shows the message)
            job.update(state="failed", error=str(err) or type(err).__name__)
        finally:
            job["finished"] = time.time()

    def get(self, job_id):
        if job_id not in self._jobs:
            raise KeyError(f"no ranking job {job_id!r}")
        return self._view(self._jobs[job_id])


class Rankings(Base):
    @property
    def jobs(self):
        site = self.ext.site
        with _LOCK:
            return self.settings.setdefault("deepvre_rankings", RankingJobs(site.get("dask"), site.get("slurm")))

    def relative(self, job):
        job["data"] = paths.relative(self.root, job["data"])
        if job.get("result"):
            job["result"] = {**job["result"], "data": {**job["result"]["data"], "path": job["data"]}}
        return job

    @api
    async def get(self):
        clusters = await self.blocking(self.jobs.clusters)
        return {"clusters": clusters, "jobs": [self.relative(j) for j in self.jobs.list()]}

    @api
    async def post(self):
        body = self.body()
        if not isinstance(body.get("data"), str) or not body["data"].strip():
            raise ValueError("give the folder of a preprocessed data set (the output of Preprocess)")
        data = self.resolve(body["data"].strip(), must_exist=True)
        from deepvre.science import ranking

        await self.blocking(ranking.describe_data, data, False)  # a wrong folder: 400 now, not a failed job
        job = self.jobs.start(data, body.get("cluster") or "local")
        self.set_status(201)
        return self.relative(job)


class RankingJob(Rankings):
    @api
    async def get(self, job_id):
        return self.relative(self.jobs.get(paths.safe_segment(job_id)))


_LOCK = threading.Lock()


def routes():
    """``(pattern, handler)`` pairs under ``/deepvre/api/`` (``handlers.handlers`` adds them)."""
    return [(r"rankings", Rankings), (r"rankings/(?P<job_id>[^/]+)", RankingJob)]
