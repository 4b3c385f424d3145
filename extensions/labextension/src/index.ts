/**
 * deepvre's JupyterLab extension: the "Models" panel in the left sidebar (search and lists), and
 * the model and run pages in the main area: commands ``deepvre:open-model`` ``{name, version}``
 * and ``deepvre:open-run`` ``{id}``, ``deepvre:open-job`` ``{id}`` (a preprocessing job), ``deepvre:open-services``,
 * ``deepvre:compare-runs`` ``{ids}`` or ``{sweep}`` (the runs page), and links ``lab?deepvre-model=NAME:VERSION`` /
 * ``lab?deepvre-run=ID`` / ``lab?deepvre-job=ID`` / ``lab?deepvre-runs=ID,ID`` / ``lab?deepvre-sweep=ID`` / ``lab?deepvre-services``.
 */
import { ILayoutRestorer, IRouter, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';

import iconSvg from '../style/icon.svg';
import { pageFromSearch } from './format';
import { Pages } from './pages';
import { IPanelOptions, ModelsPanel } from './panel';

export const modelsIcon = new LabIcon({ name: 'deepvre:models', svgstr: iconSvg });
const COMMAND = 'deepvre:open-models';
const OPEN_MODEL = 'deepvre:open-model';
const OPEN_RUN = 'deepvre:open-run';
const OPEN_JOB = 'deepvre:open-job';
const OPEN_SERVICES = 'deepvre:open-services';
const COMPARE_RUNS = 'deepvre:compare-runs';
const OPEN_LINK = 'deepvre:open-link';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'deepvre:models',
  description: 'Browse the model marketplace; fine-tune, run, preprocess, serve and publish models.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [ILayoutRestorer, ICommandPalette, IRouter],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    router: IRouter | null
  ) => {
    const options: IPanelOptions = {
      rendermime,
      openPath: path => void app.commands.execute('docmanager:open', { path }),
      openModel: (name, version) => void app.commands.execute(OPEN_MODEL, { name, version }),
      openRun: id => void app.commands.execute(OPEN_RUN, { id }),
      openJob: id => void app.commands.execute(OPEN_JOB, { id }),
      openServices: () => void app.commands.execute(OPEN_SERVICES),
      compareRuns: (ids, sweep) => void app.commands.execute(COMPARE_RUNS, { ids, sweep: sweep ?? '' })
    };
    const pages = new Pages(app, () => options);
    const panel = new ModelsPanel(options);
    panel.id = 'deepvre-models';
    panel.title.icon = modelsIcon;
    panel.title.caption = 'Models';
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'deepvre-models');
    app.commands.addCommand(COMMAND, {
      label: 'Open the Models panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(OPEN_MODEL, {
      label: args => (args.name ? `Open model page ${args.name}` : 'Open a model page'),
      describedBy: {
        args: {
          type: 'object',
          properties: { name: { type: 'string' }, version: { type: 'string' } },
          required: ['name']
        }
      },
      execute: args => pages.show({ kind: 'model', name: String(args.name), version: String(args.version ?? '') })
    });
    app.commands.addCommand(OPEN_RUN, {
      label: args => (args.id ? `Open run page ${args.id}` : 'Open a run page'),
      describedBy: { args: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } },
      execute: args => pages.show({ kind: 'run', id: String(args.id) })
    });
    app.commands.addCommand(OPEN_JOB, {
      label: args => (args.id ? `Open preprocessing job ${args.id}` : 'Open a preprocessing job'),
      describedBy: { args: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } },
      execute: args => pages.show({ kind: 'job', id: String(args.id) })
    });
    app.commands.addCommand(COMPARE_RUNS, {
      label: args => (args.sweep ? `Open sweep ${args.sweep}` : 'Compare runs side by side'),
      describedBy: {
        args: {
          type: 'object',
          properties: { ids: { type: 'array', items: { type: 'string' } }, sweep: { type: 'string' } }
        }
      },
      execute: args =>
        pages.show({
          kind: 'runs',
          ids: Array.isArray(args.ids) ? args.ids.map(String) : [],
          sweep: String(args.sweep ?? '')
        })
    });
    app.commands.addCommand(OPEN_SERVICES, {
      label: 'Open the served models page',
      execute: () => pages.show({ kind: 'services' })
    });
    // lab?deepvre-model=NAME:VERSION, lab?deepvre-run=ID, lab?deepvre-job=ID and lab?deepvre-services open their page once the lab is up
    app.commands.addCommand(OPEN_LINK, {
      execute: args => {
        const page = pageFromSearch(String((args as { search?: string }).search ?? ''));
        if (page) {
          void app.restored.then(() => pages.show(page));
        }
      }
    });
    router?.register({ command: OPEN_LINK, pattern: /[?&]deepvre-(model=|run=|job=|runs=|sweep=|services)/, rank: 80 });
    palette?.addItem({ command: OPEN_SERVICES, category: 'deepvre' });
    app.commands.addKeyBinding({ command: COMMAND, keys: ['Accel Shift M'], selector: 'body' });
    palette?.addItem({ command: COMMAND, category: 'deepvre' });
  }
};

export default plugin;
