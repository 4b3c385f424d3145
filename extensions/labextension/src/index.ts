/** deepvre's JupyterLab extension: the "Models" panel in the left sidebar. */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';

import iconSvg from '../style/icon.svg';
import { ModelsPanel } from './panel';

export const modelsIcon = new LabIcon({ name: 'deepvre:models', svgstr: iconSvg });
const COMMAND = 'deepvre:open-models';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'deepvre:models',
  description: 'Browse the model marketplace; fine-tune, run, preprocess, serve and publish models.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const panel = new ModelsPanel({
      rendermime,
      openPath: path => void app.commands.execute('docmanager:open', { path })
    });
    panel.id = 'deepvre-models';
    panel.title.icon = modelsIcon;
    panel.title.caption = 'Models';
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'deepvre-models');
    app.commands.addCommand(COMMAND, {
      label: 'Open the Models panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addKeyBinding({ command: COMMAND, keys: ['Accel Shift M'], selector: 'body' });
    palette?.addItem({ command: COMMAND, category: 'deepvre' });
  }
};

export default plugin;
